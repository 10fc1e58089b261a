package server_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/internal/api"
	"github.com/cutover/cutover/internal/client"
	"github.com/cutover/cutover/internal/core"
)

// hookEnv is a server with app hello and its hook secret.
type hookEnv struct {
	*env
	base, secret, sha string
}

func newHookEnv(t *testing.T) *hookEnv {
	t.Helper()
	e := newEnv(t)
	h := &hookEnv{env: e, base: e.srv.URL(), sha: e.commit("v2")}
	status, body := call(t, h.base, e.srv.Token, "POST", "/api/v1/apps/hello/hooks/secret", nil)
	if status != http.StatusCreated {
		t.Fatalf("hook secret: %d %s", status, body)
	}
	var res api.HookSecretResponse
	if err := json.Unmarshal([]byte(body), &res); err != nil || len(res.Secret) != 64 || res.GitHub != "/api/v1/hooks/github/hello" {
		t.Fatalf("hook secret answer %s: %v", body, err)
	}
	h.secret = res.Secret
	return h
}

func sign(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// deliver posts body to path with headers (no bearer token).
func (h *hookEnv) deliver(t *testing.T, path string, headers map[string]string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest("POST", h.base+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

func (h *hookEnv) github(t *testing.T, event, id string, body []byte) (int, string) {
	t.Helper()
	return h.deliver(t, "/api/v1/hooks/github/hello", map[string]string{
		"X-GitHub-Event": event, "X-GitHub-Delivery": id, "X-Hub-Signature-256": sign(h.secret, body)}, body)
}

func (h *hookEnv) checks(t *testing.T) []core.CommitStatus {
	t.Helper()
	status, body := call(t, h.base, h.srv.Token, "GET", "/api/v1/apps/hello/commits/"+h.sha+"/checks", nil)
	if status != 200 {
		t.Fatalf("checks: %d %s", status, body)
	}
	var cs []core.CommitStatus
	if err := json.Unmarshal([]byte(body), &cs); err != nil {
		t.Fatal(err)
	}
	return cs
}

// eventCount counts the app's events of type typ.
func (h *hookEnv) eventCount(t *testing.T, typ core.EventType) int {
	t.Helper()
	es, err := client.New(h.base, h.srv.Token).Events(context.Background(), "hello", 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range es {
		if e.Type == typ {
			n++
		}
	}
	return n
}

func TestHooks_GitHubStatusRecordsCheckOnce(t *testing.T) {
	h := newHookEnv(t)
	body := fmt.Appendf(nil, `{"sha":%q,"state":"success","context":"ci/circleci: build","target_url":"https://ci.example.com/1"}`, h.sha)
	if status, res := h.github(t, "status", "d-1", body); status != 200 || !strings.Contains(res, `"processed"`) {
		t.Fatalf("delivery: %d %s", status, res)
	}
	cs := h.checks(t)
	if len(cs) != 1 || cs[0].Name != "ci/circleci--build" || cs[0].State != core.CheckSuccess || cs[0].By != "github" {
		t.Fatalf("checks = %+v", cs)
	}
	// A replay of the same delivery changes nothing, even with another body.
	failed := fmt.Appendf(nil, `{"sha":%q,"state":"failure","context":"ci/circleci: build"}`, h.sha)
	if status, res := h.github(t, "status", "d-1", failed); status != 200 || !strings.Contains(res, "already processed") {
		t.Fatalf("replay: %d %s", status, res)
	}
	if cs := h.checks(t); len(cs) != 1 || cs[0].State != core.CheckSuccess {
		t.Fatalf("checks after replay = %+v", cs)
	}
	if n := h.eventCount(t, core.EventCheckReported); n != 1 {
		t.Errorf("check events = %d, want 1", n)
	}
	// check_run too.
	run := fmt.Appendf(nil, `{"action":"completed","check_run":{"name":"tests","head_sha":%q,"status":"completed","conclusion":"timed_out"}}`, h.sha)
	if status, res := h.github(t, "check_run", "d-2", run); status != 200 {
		t.Fatalf("check_run: %d %s", status, res)
	}
	if cs := h.checks(t); len(cs) != 2 || cs[1].Name != "tests" || cs[1].State != core.CheckFailure {
		t.Fatalf("checks after check_run = %+v", cs)
	}
}

// TestHooks_RefusedDeliveriesChangeNothing sends deliveries that must be
// refused or ignored, then checks that none left a trace.
func TestHooks_RefusedDeliveriesChangeNothing(t *testing.T) {
	h := newHookEnv(t)
	good := fmt.Appendf(nil, `{"sha":%q,"state":"success","context":"ci"}`, h.sha)
	big := append(append([]byte(`{"sha":"`+h.sha+`","state":"success","context":"ci","pad":"`), bytes.Repeat([]byte("x"), api.MaxHookBytes)...), `"}`...)
	path := "/api/v1/hooks/github/hello"
	for _, tc := range []struct {
		name    string
		path    string
		headers map[string]string
		body    []byte
		status  int
	}{
		{"no signature", path, map[string]string{"X-GitHub-Event": "status", "X-GitHub-Delivery": "n1"}, good, 401},
		{"wrong secret", path, map[string]string{"X-GitHub-Event": "status", "X-GitHub-Delivery": "n2", "X-Hub-Signature-256": sign("other", good)}, good, 401},
		{"signature of another body", path, map[string]string{"X-GitHub-Event": "status", "X-GitHub-Delivery": "n3", "X-Hub-Signature-256": sign(h.secret, []byte("{}"))}, good, 401},
		{"bearer token instead of signature", path, map[string]string{"X-GitHub-Event": "status", "X-GitHub-Delivery": "n4", "Authorization": "Bearer " + h.srv.Token}, good, 401},
		{"app without a secret", "/api/v1/hooks/github/other", map[string]string{"X-GitHub-Event": "status", "X-GitHub-Delivery": "n5", "X-Hub-Signature-256": sign(h.secret, good)}, good, 401},
		{"oversized body", path, map[string]string{"X-GitHub-Event": "status", "X-GitHub-Delivery": "n6", "X-Hub-Signature-256": sign(h.secret, big)}, big, 413},
		{"malformed JSON", path, map[string]string{"X-GitHub-Event": "status", "X-GitHub-Delivery": "n7", "X-Hub-Signature-256": sign(h.secret, []byte(`{"sha":`))}, []byte(`{"sha":`), 400},
		{"no delivery id", path, map[string]string{"X-GitHub-Event": "status", "X-Hub-Signature-256": sign(h.secret, good)}, good, 400},
		{"unknown event", path, map[string]string{"X-GitHub-Event": "star", "X-GitHub-Delivery": "n8", "X-Hub-Signature-256": sign(h.secret, good)}, good, 202},
		{"review not an approval", path, map[string]string{"X-GitHub-Event": "pull_request_review", "X-GitHub-Delivery": "n9", "X-Hub-Signature-256": sign(h.secret, []byte(`{"review":{"state":"commented","user":{"login":"ann"}}}`))}, []byte(`{"review":{"state":"commented","user":{"login":"ann"}}}`), 202},
		{"gitlab wrong token", "/api/v1/hooks/gitlab/hello", map[string]string{"X-Gitlab-Event": "Pipeline Hook", "X-Gitlab-Event-UUID": "n10", "X-Gitlab-Token": h.secret + "x"}, good, 401},
		{"gitlab unknown event", "/api/v1/hooks/gitlab/hello", map[string]string{"X-Gitlab-Event": "Note Hook", "X-Gitlab-Event-UUID": "n11", "X-Gitlab-Token": h.secret}, good, 202},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := h.deliver(t, tc.path, tc.headers, tc.body)
			if status != tc.status {
				t.Errorf("status = %d (%s), want %d", status, body, tc.status)
			}
		})
	}
	// Without a Content-Length (chunked), reading stops past the bound.
	t.Run("oversized chunked body", func(t *testing.T) {
		req, err := http.NewRequest("POST", h.base+path, io.MultiReader(bytes.NewReader(big)))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-GitHub-Event", "status")
		req.Header.Set("X-GitHub-Delivery", "n12")
		req.Header.Set("X-Hub-Signature-256", sign(h.secret, big))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if req.ContentLength != 0 || resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("content length %d: status = %d, want 413", req.ContentLength, resp.StatusCode)
		}
	})
	if cs := h.checks(t); len(cs) != 0 {
		t.Errorf("checks = %+v, want none", cs)
	}
	if n := h.eventCount(t, core.EventCheckReported) + h.eventCount(t, core.EventReviewed); n != 0 {
		t.Errorf("%d check or review events, want none", n)
	}
	// None of the refused deliveries was claimed: the good one with a
	// refused id is processed now.
	if status, res := h.github(t, "status", "n1", good); status != 200 || !strings.Contains(res, `"processed"`) {
		t.Errorf("n1 after refusal: %d %s", status, res)
	}
}

func TestHooks_GitLabPipelineRecordsCheck(t *testing.T) {
	h := newHookEnv(t)
	body := fmt.Appendf(nil, `{"object_kind":"pipeline","object_attributes":{"sha":%q,"status":"failed"}}`, h.sha)
	status, res := h.deliver(t, "/api/v1/hooks/gitlab/hello", map[string]string{
		"X-Gitlab-Event": "Pipeline Hook", "X-Gitlab-Event-UUID": "g-1", "X-Gitlab-Token": h.secret}, body)
	if status != 200 {
		t.Fatalf("delivery: %d %s", status, res)
	}
	if cs := h.checks(t); len(cs) != 1 || cs[0].Name != "pipeline" || cs[0].State != core.CheckFailure || cs[0].By != "gitlab" {
		t.Fatalf("checks = %+v", cs)
	}
}

func TestHooks_GitHubReviewRecordsReviewByUser(t *testing.T) {
	h := newHookEnv(t)
	admin := client.New(h.base, h.srv.Token)
	if _, err := admin.AddUser(context.Background(), client.NewUser{Name: "ann", Email: "ann@example.com", Role: core.RoleApprover}); err != nil {
		t.Fatal(err)
	}
	body := fmt.Appendf(nil, `{"action":"submitted","review":{"state":"approved","user":{"login":"octo","email":"ann@example.com"}},"pull_request":{"head":{"sha":%q}}}`, h.sha)
	if status, res := h.github(t, "pull_request_review", "r-1", body); status != 200 {
		t.Fatalf("delivery: %d %s", status, res)
	}
	es, err := admin.Events(context.Background(), "hello", 0)
	if err != nil {
		t.Fatal(err)
	}
	var by []string
	for _, e := range es {
		if e.Type == core.EventReviewed && e.SHA == h.sha {
			by = append(by, e.Actor)
		}
	}
	if len(by) != 1 || by[0] != "ann" {
		t.Errorf("reviews by %v, want [ann]", by)
	}
}

func TestHooks_PushIsAccepted(t *testing.T) {
	h := newHookEnv(t)
	body := fmt.Appendf(nil, `{"ref":"refs/heads/main","after":%q}`, h.sha)
	if status, res := h.github(t, "push", "p-1", body); status != 202 {
		t.Fatalf("push: %d %s", status, res)
	}
	if status, res := h.github(t, "push", "p-1", body); status != 200 || !strings.Contains(res, "already processed") {
		t.Fatalf("push replay: %d %s", status, res)
	}
}

// A push and a status, both by webhook, with staging's policy asking for
// ci and auto_deploy: the check is recorded and the head deploys on its own.
func TestHooks_PushAndStatusAutoDeploy(t *testing.T) {
	h := newHookEnv(t)
	ctx := context.Background()
	if _, err := h.svc.SetPolicy(ctx, "hello", []byte("environments:\n  staging:\n    checks: [test]\n    auto_deploy: {branch: main}\n"), "root"); err != nil {
		t.Fatal(err)
	}
	push := fmt.Appendf(nil, `{"ref":"refs/heads/main","after":%q}`, h.sha)
	if status, res := h.github(t, "push", "push-1", push); status != 202 {
		t.Fatalf("push: %d %s", status, res)
	}
	// CI has not reported yet: the auto-deploy waits for it.
	waitDeployment := func(want core.DeploymentState) core.Deployment {
		t.Helper()
		var hist []core.Deployment
		waitShowing(t, fmt.Sprintf("a %s auto-deploy", want), 30*time.Second, func() bool {
			hist, _ = h.svc.History(ctx, "hello", "staging", 0, 1)
			return len(hist) == 1 && hist[0].State == want
		}, func() string { return fmt.Sprintf("no %s auto-deploy: %+v", want, hist) })
		return hist[0]
	}
	w := waitDeployment(core.StateWaiting)
	if w.RequestedBy != "auto-deploy" || !strings.Contains(w.WaitingOn, "ci") {
		t.Errorf("waiting auto-deploy = %+v", w)
	}
	status := fmt.Appendf(nil, `{"sha":%q,"state":"success","context":"test"}`, h.sha)
	if code, res := h.github(t, "status", "status-1", status); code/100 != 2 {
		t.Fatalf("status: %d %s", code, res)
	}
	waitDeployment(core.StateSucceeded)
	h.serves(h.staging, "v1")
}
