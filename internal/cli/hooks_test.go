package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestHookSecretCLI makes a hook secret as the admin and is refused one
// as a deployer.
func TestHookSecretCLI(t *testing.T) {
	_, repo, cli := startCLIServer(t, "v1", 200*time.Millisecond)
	if code, out := cli("app", "add", "hello", "--repo", repo); code != exitOK {
		t.Fatalf("app add: %d %s", code, out)
	}
	code, out := cli("hook", "secret", "hello")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != exitOK || len(lines[len(lines)-1]) != 64 || !strings.Contains(out, "/api/v1/hooks/github/hello") || !strings.Contains(out, "http://") {
		t.Fatalf("hook secret: %d %s", code, out)
	}
	code, out = cli("hook", "secret", "hello", "--output", "json")
	var s struct{ Secret, GitLab string }
	if err := json.Unmarshal([]byte(out), &s); code != exitOK || err != nil || s.Secret == lines[len(lines)-1] || s.GitLab != "/api/v1/hooks/gitlab/hello" {
		t.Fatalf("hook secret --output json: %d %s %v", code, out, err)
	}
	if code, out := cli("hook", "secret", "nosuch"); code != exitFail || !strings.Contains(out, "not found") {
		t.Errorf("hook secret of a missing app: %d %s", code, out)
	}
	if code, out := cli("hook", "secret", "../x"); code != exitUsage {
		t.Errorf("hook secret ../x: %d %s", code, out)
	}
	code, out = cli("user", "add", "dan", "--email", "dan@example.com", "--role", "deployer", "--output", "json")
	var added struct{ Token string }
	if err := json.Unmarshal([]byte(out), &added); code != exitOK || err != nil {
		t.Fatalf("user add: %d %s", code, out)
	}
	if code, out := cli("hook", "secret", "hello", "--token", added.Token); code != exitFail || !strings.Contains(out, "admin") {
		t.Errorf("hook secret as a deployer: %d %s", code, out)
	}
}
