package cli

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestNotifyCLI: usage errors exit 2, a loopback receiver is refused by a
// server without --allow-private-notify, and list and log answer.
func TestNotifyCLI(t *testing.T) {
	srv, repo, cli := startCLIServer(t, "v1", 200*time.Millisecond)
	if _, err := srv.Deploy.AddApp(context.Background(), "hello", repo); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"notify", "add", "hello", "--on", "rollback"},
		{"notify", "add", "hello", "--webhook", "https://example.com/x"},
		{"notify", "add", "hello", "--on", "rollback", "--webhook", "https://example.com/x", "--slack", "https://example.com/y"},
		{"notify", "list"},
		{"notify", "remove"},
	} {
		if code, out := cli(args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d: %s", args, code, exitUsage, out)
		}
	}
	if code, out := cli("notify", "add", "hello", "--on", "rollback", "--webhook", "http://127.0.0.1:9/hook"); code != exitFail || !strings.Contains(out, "--allow-private-notify") {
		t.Errorf("loopback receiver: %d %s", code, out)
	}
	if code, out := cli("notify", "add", "hello", "--on", "nope", "--slack", "https://hooks.example.com/x"); code != exitFail || !strings.Contains(out, "deploy.started") {
		t.Errorf("unknown kind: %d %s", code, out)
	}
	if code, out := cli("notify", "list", "hello"); code != exitOK || !strings.Contains(out, "CHANNEL") {
		t.Errorf("list: %d %s", code, out)
	}
	if code, out := cli("notify", "log", "hello", "--output", "json"); code != exitOK || strings.TrimSpace(out) != "[]" {
		t.Errorf("log: %d %s", code, out)
	}
	if code, out := cli("notify", "remove", "ntf_nothere"); code != exitFail || !strings.Contains(out, "not found") {
		t.Errorf("remove unknown: %d %s", code, out)
	}
}
