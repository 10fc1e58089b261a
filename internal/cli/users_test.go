package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestUserAndTokenCLI adds a user, lists users, acts with the new token,
// makes and revokes tokens: the fixed verbs of `cutover user` and
// `cutover token`.
func TestUserAndTokenCLI(t *testing.T) {
	_, _, cli := startCLIServer(t, "v1", 200*time.Millisecond)
	code, out := cli("user", "add", "ann", "--email", "ann@example.com", "--role", "viewer", "--apps", "hello", "--output", "json")
	if code != exitOK {
		t.Fatalf("user add: %d %s", code, out)
	}
	var added struct {
		Token   string `json:"token"`
		TokenID string `json:"token_id"`
	}
	if err := json.Unmarshal([]byte(out), &added); err != nil || !strings.HasPrefix(added.Token, "cut_") || added.TokenID == "" {
		t.Fatalf("user add --output json = %q, %v", out, err)
	}
	if code, out := cli("user", "list"); code != exitOK || !strings.Contains(out, "ann@example.com") || !strings.Contains(out, "viewer on app hello, env *") || !strings.Contains(out, "admin") {
		t.Errorf("user list: %d %s", code, out)
	}
	// ann may read but not add users; the refusal names the role needed.
	if code, out := cli("user", "list", "--token", added.Token); code != exitFail || !strings.Contains(out, "needs the admin role") {
		t.Errorf("user list as ann: %d %s", code, out)
	}
	if code, out := cli("app", "list", "--token", added.Token); code != exitOK {
		t.Errorf("app list as ann: %d %s", code, out)
	}
	for _, args := range [][]string{
		{"user", "add", "bob", "--email", "bob@example.com", "--role", "root"},
		{"user", "add", "bob", "--email", "bob@example.com"},
		{"user", "add", "bob", "--role", "viewer"},
		{"user", "add", "bob", "--email", "bob@example.com", "--role", "viewer", "--envs", "prod/x"},
	} {
		if code, out := cli(args...); code != exitUsage {
			t.Errorf("%v: %d %s, want usage error", args, code, out)
		}
	}
	code, out = cli("token", "create", "ann")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != exitOK || !strings.HasPrefix(lines[len(lines)-1], "cut_") {
		t.Fatalf("token create: %d %s", code, out)
	}
	if code, out := cli("token", "revoke", added.TokenID); code != exitOK || !strings.Contains(out, "revoked") {
		t.Fatalf("token revoke: %d %s", code, out)
	}
	if code, out := cli("app", "list", "--token", added.Token); code != exitFail || !strings.Contains(out, "revoked") {
		t.Errorf("revoked token: %d %s", code, out)
	}
	if code, out := cli("app", "list", "--token", lines[len(lines)-1]); code != exitOK {
		t.Errorf("ann's second token: %d %s", code, out)
	}
}
