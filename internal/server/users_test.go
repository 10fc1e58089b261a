package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/cutover/cutover/internal/client"
	"github.com/cutover/cutover/internal/core"
)

// call sends one API request with token and returns the status and body.
func call(t *testing.T, base, token, method, path string, body any) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// TestRBACMatrix calls representative routes as users of every role, with
// app and env globs that match and that do not, through the real server:
// each answer is 403 exactly when the table says the user may not.
func TestRBACMatrix(t *testing.T) {
	e := newEnv(t)
	base := e.srv.URL()
	admin := client.New(base, e.srv.Token)
	ctx := context.Background()

	type user struct {
		name, role, apps, envs string
		token                  string
	}
	users := []*user{
		{name: "v-all", role: "viewer", apps: "*", envs: "*"},
		{name: "v-other", role: "viewer", apps: "other*", envs: "*"},
		{name: "d-all", role: "deployer", apps: "*", envs: "*"},
		{name: "d-stg", role: "deployer", apps: "hel*", envs: "staging"},
		{name: "d-other", role: "deployer", apps: "other", envs: "*"},
		{name: "ap-all", role: "approver", apps: "*", envs: "*"},
		{name: "ad-all", role: "admin", apps: "*", envs: "*"},
		{name: "ad-hello", role: "admin", apps: "hello", envs: "*"},
		{name: "ad-other", role: "admin", apps: "other", envs: "prod*"},
	}
	for _, u := range users {
		added, err := admin.AddUser(ctx, client.NewUser{Name: u.name, Email: u.name + "@example.com", Role: core.Role(u.role), Apps: u.apps, Envs: u.envs})
		if err != nil {
			t.Fatalf("add %s: %v", u.name, err)
		}
		if !strings.HasPrefix(added.Token, "cut_") {
			t.Fatalf("token %q: want the cut_ prefix", added.Token)
		}
		u.token = added.Token
	}
	users = append(users, &user{name: "admin", role: "admin (server token)", apps: "*", envs: "*", token: e.srv.Token})

	type action struct {
		name, method, path string
		body               func(u string) any
	}
	actions := []action{
		{"read status", "GET", "/api/v1/apps/hello/status", nil},
		{"read config staging", "GET", "/api/v1/apps/hello/envs/staging/config", nil},
		{"read all events", "GET", "/api/v1/events", nil},
		// An unknown ref: an allowed caller reaches the deploy machine,
		// which refuses the ref (4xx) without starting anything.
		{"deploy staging", "POST", "/api/v1/apps/hello/envs/staging/deployments", func(string) any { return map[string]string{"ref": "no-such-ref"} }},
		{"deploy production", "POST", "/api/v1/apps/hello/envs/production/deployments", func(string) any { return map[string]string{"ref": "no-such-ref"} }},
		{"rollback staging", "POST", "/api/v1/apps/hello/envs/staging/rollback", func(string) any { return map[string]any{} }},
		{"config set production", "PATCH", "/api/v1/apps/hello/envs/production/config", func(u string) any { return map[string]any{"vars": map[string]string{"SET_BY": u}} }},
		{"user add", "POST", "/api/v1/users", func(u string) any {
			return map[string]string{"name": "new-" + u, "email": "x@example.com", "role": "viewer"}
		}},
		{"app add", "POST", "/api/v1/apps", func(u string) any { return map[string]string{"name": "app-" + u, "repo": e.repo} }},
		// Governance: bodies an allowed caller gets refused for (4xx) after
		// authorisation, so nothing changes for the other rows.
		{"review", "POST", "/api/v1/apps/hello/reviews", func(string) any { return map[string]string{"sha": "no-such-ref"} }},
		{"approve production", "POST", "/api/v1/apps/hello/envs/production/approvals", func(string) any { return map[string]any{"sha": "no-such-ref"} }},
		{"lock staging", "PUT", "/api/v1/apps/hello/envs/staging/lock", func(string) any { return map[string]string{"reason": ""} }},
		{"policy set", "PUT", "/api/v1/apps/hello/policy", func(string) any { return map[string]string{"not": "a policy"} }},
		{"override production", "POST", "/api/v1/apps/hello/envs/production/deployments", func(string) any {
			return map[string]any{"ref": "no-such-ref", "override": true, "reason": "rbac test"}
		}},
	}
	// Hand-written: what each user may do (and nothing else).
	allowed := map[string][]string{
		"v-all":    {"read status", "read config staging", "read all events"},
		"v-other":  {},
		"d-all":    {"read status", "read config staging", "read all events", "deploy staging", "deploy production", "rollback staging", "lock staging"},
		"d-stg":    {"read status", "read config staging", "deploy staging", "rollback staging", "lock staging"},
		"d-other":  {},
		"ap-all":   {"read status", "read config staging", "read all events", "review", "approve production"},
		"ad-all":   {"read status", "read config staging", "read all events", "deploy staging", "deploy production", "rollback staging", "config set production", "user add", "app add", "review", "approve production", "lock staging", "policy set", "override production"},
		"ad-hello": {"read status", "read config staging", "deploy staging", "deploy production", "rollback staging", "config set production", "review", "approve production", "lock staging", "policy set", "override production"},
		"ad-other": {},
		"admin":    {"read status", "read config staging", "read all events", "deploy staging", "deploy production", "rollback staging", "config set production", "user add", "app add", "review", "approve production", "lock staging", "policy set", "override production"},
	}

	var table strings.Builder
	fmt.Fprintf(&table, "\n%-9s %-22s %-16s", "user", "role", "apps/envs")
	for _, a := range actions {
		fmt.Fprintf(&table, " | %-10.10s", a.name)
	}
	table.WriteString("\n")
	mismatches := 0
	for _, u := range users {
		may := map[string]bool{}
		for _, a := range allowed[u.name] {
			may[a] = true
		}
		fmt.Fprintf(&table, "%-9s %-22s %-16s", u.name, u.role, u.apps+"/"+u.envs)
		for _, a := range actions {
			var body any
			if a.body != nil {
				body = a.body(u.name)
			}
			status, msg := call(t, base, u.token, a.method, a.path, body)
			got := status != http.StatusForbidden
			mark := ""
			if got != may[a.name] || status == http.StatusUnauthorized || status >= 500 {
				mismatches++
				mark = "!"
				t.Errorf("%s %s: %d %s; want allowed=%v", u.name, a.name, status, msg, may[a.name])
			}
			if status == http.StatusForbidden && !strings.Contains(msg, "forbidden: ") {
				t.Errorf("%s %s: 403 without a reason: %s", u.name, a.name, msg)
			}
			cell := "deny"
			if got {
				cell = "ok"
			}
			fmt.Fprintf(&table, " | %-10s", fmt.Sprintf("%s %d%s", cell, status, mark))
		}
		table.WriteString("\n")
	}
	t.Logf("RBAC matrix (ok = reached the handler, deny = 403; deploy/rollback 4xx = refused by the deploy machine after authorisation):%s%d mismatches", table.String(), mismatches)

	// Work is recorded under the caller's name.
	es, err := admin.Events(ctx, "hello", 0)
	if err != nil {
		t.Fatal(err)
	}
	var actors []string
	for _, ev := range es {
		if ev.Type == core.EventConfigSet {
			actors = append(actors, ev.Actor)
		}
	}
	sort.Strings(actors)
	if strings.Join(actors, ",") != "ad-all,ad-hello,admin" {
		t.Errorf("config set events by %v, want ad-all, ad-hello and admin", actors)
	}

	// A scoped viewer lists only the apps it may read.
	if st, body := call(t, base, users[1].token, "GET", "/api/v1/apps", nil); st != 200 || body != "[]" {
		t.Errorf("v-other lists apps: %d %s, want []", st, body)
	}
	// The 403 names the role that is needed.
	if _, msg := call(t, base, users[0].token, "POST", "/api/v1/apps/hello/envs/production/deployments", map[string]string{"ref": "HEAD"}); !strings.Contains(msg,
		"forbidden: deploying to hello/production needs the deployer role on app hello, env production; v-all has viewer") {
		t.Errorf("403 message: %s", msg)
	}
}

// TestTokenRevocation: a revoked token is refused on the next request, and
// only its owner or an admin may revoke it.
func TestTokenRevocation(t *testing.T) {
	e := newEnv(t)
	base := e.srv.URL()
	ctx := context.Background()
	admin := client.New(base, e.srv.Token)
	ann, err := admin.AddUser(ctx, client.NewUser{Name: "ann", Email: "ann@example.com", Role: core.RoleDeployer})
	if err != nil {
		t.Fatal(err)
	}
	bob, err := admin.AddUser(ctx, client.NewUser{Name: "bob", Email: "bob@example.com", Role: core.RoleViewer})
	if err != nil {
		t.Fatal(err)
	}
	me, err := client.New(base, ann.Token).Me(ctx)
	if err != nil || me.User.Name != "ann" || me.TokenID != ann.TokenID {
		t.Fatalf("me = %+v, %v", me, err)
	}
	// bob may not revoke ann's token, nor make tokens for her.
	if st, msg := call(t, base, bob.Token, "DELETE", "/api/v1/tokens/"+ann.TokenID, nil); st != http.StatusForbidden {
		t.Errorf("bob revokes ann's token: %d %s, want 403", st, msg)
	}
	if st, msg := call(t, base, bob.Token, "POST", "/api/v1/users/ann/tokens", nil); st != http.StatusForbidden {
		t.Errorf("bob makes a token for ann: %d %s, want 403", st, msg)
	}
	// ann makes a second token of her own, then an admin revokes the first.
	second, err := client.New(base, ann.Token).CreateToken(ctx, "ann")
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := call(t, base, ann.Token, "GET", "/api/v1/apps/hello/status", nil); st != 200 {
		t.Fatalf("before revocation: %d", st)
	}
	if err := admin.RevokeToken(ctx, ann.TokenID); err != nil {
		t.Fatal(err)
	}
	if st, msg := call(t, base, ann.Token, "GET", "/api/v1/apps/hello/status", nil); st != http.StatusUnauthorized {
		t.Errorf("right after revocation: %d %s, want 401", st, msg)
	}
	if st, _ := call(t, base, second.Token, "GET", "/api/v1/apps/hello/status", nil); st != 200 {
		t.Errorf("ann's other token: %d, want 200", st)
	}
	// A user revokes their own token.
	if err := client.New(base, second.Token).RevokeToken(ctx, second.ID); err != nil {
		t.Fatal(err)
	}
	if st, _ := call(t, base, second.Token, "GET", "/api/v1/me", nil); st != http.StatusUnauthorized {
		t.Errorf("self-revoked token: %d, want 401", st)
	}
	if st, _ := call(t, base, "cut_"+strings.Repeat("0", 64), "GET", "/api/v1/me", nil); st != http.StatusUnauthorized {
		t.Errorf("unknown token: %d, want 401", st)
	}
	us, err := admin.Users(ctx)
	if err != nil || len(us) != 3 || us[0].Name != "admin" {
		t.Errorf("users = %+v, %v", us, err)
	}
}
