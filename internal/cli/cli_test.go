package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/examples"
	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/gitx"
	"github.com/cutover/cutover/internal/server"
	"github.com/cutover/cutover/internal/testutil"
)

// run executes the CLI in-process and returns its exit code and output.
func run(t *testing.T, args ...string) (int, string) {
	t.Helper()
	root := NewRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	if err == nil {
		return exitOK, out.String()
	}
	out.WriteString("error: " + err.Error())
	var ue usageError
	if errors.As(err, &ue) {
		return exitUsage, out.String()
	}
	return exitFail, out.String()
}

func commit(t *testing.T, dir, msg string) {
	t.Helper()
	if _, err := gitx.CommitAll(context.Background(), dir, msg); err != nil {
		t.Fatal(err)
	}
}

func TestUsageErrorsExitTwo(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"deploy", "hello"},
		{"deploy", "../x", "prod", "--token", "t"},
		{"deploy", "hello", "prod;rm", "--token", "t"},
		{"rollback", "hello", "prod", "--to", "3", "--steps", "2", "--token", "t"},
		{"config", "set", "hello", "prod", "NOEQUALS", "--token", "t"},
		{"status", "hello", "--output", "yaml", "--token", "t"},
		{"server", "extra"},
		{"proxy", "weight", "web", "--percent", "101", "--admin", "/tmp/x.sock"},
		{"deploy", "hello", "prod", "--bogus-flag"},
		{"config", "shwo"},
		{"proxy", "statuss"},
		{"release", "cutt", "hello"},
		{"follow", "abc", "--token", "t"},
		{"cancel", "-3", "--token", "t"},
	} {
		code, out := run(t, args...)
		if code != exitUsage {
			t.Errorf("%v: exit %d, want 2; output %q", args, code, out)
		}
	}
}

// startCLIServer makes a repository with the example app (one commit), starts
// a real server, and returns a function that runs the CLI against it.
func startCLIServer(t *testing.T, firstCommit string, verify time.Duration) (*server.Server, string, func(...string) (int, string)) {
	t.Helper()
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	if err := examples.WriteHello(repo, examples.HelloOptions{StagingListen: testutil.ListenAddr(t), ProductionListen: testutil.ListenAddr(t), Verify: verify}); err != nil {
		t.Fatal(err)
	}
	if err := gitx.Init(context.Background(), repo); err != nil {
		t.Fatal(err)
	}
	commit(t, repo, firstCommit)
	data := filepath.Join(dir, "data")
	srv, err := server.Open(context.Background(), server.Config{DataDir: data, Listen: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.StopAll(context.Background()); srv.Close() })
	// --server as host:port, as people type it (the other tests use a URL).
	base := []string{"--server", strings.TrimPrefix(srv.URL(), "http://"), "--data-dir", data}
	return srv, repo, func(args ...string) (int, string) { return run(t, append(args, base...)...) }
}

// TestCLIEndToEnd drives a real server through the CLI: the happy path,
// bad input with clear errors, and secrets that never come back.
func TestCLIEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the example app")
	}
	t.Parallel()
	srv, repo, cli := startCLIServer(t, "v1", 300*time.Millisecond)
	dir := filepath.Dir(repo)

	if code, out := cli("app", "add", "hello", "--repo", repo); code != 0 {
		t.Fatalf("app add: %d %s", code, out)
	}
	code, out := cli("deploy", "hello", "staging")
	if code != 0 || !strings.Contains(out, "switching staging to blue") || !strings.Contains(out, "succeeded") {
		t.Fatalf("deploy: %d\n%s", code, out)
	}
	code, out = cli("deploy", "hello", "staging")
	if code != 0 || !strings.Contains(out, "nothing to do") {
		t.Errorf("redeploy: %d %s", code, out)
	}
	code, out = cli("status", "hello", "--output", "json")
	var st []struct {
		Env   string        `json:"env"`
		State core.EnvState `json:"state"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st[0].State.Live != core.Blue {
		t.Errorf("status json: %d %s", code, out)
	}

	code, out = cli("events", "hello", "--output", "json")
	var es []core.Event
	if code != 0 || json.Unmarshal([]byte(out), &es) != nil || len(es) == 0 || es[len(es)-1].Type != core.EventDeployNoop {
		t.Errorf("events --output json is not one JSON array ending with the no-op: %d %s", code, out)
	}

	// Secrets: accepted, never shown by the API, the CLI or the logs.
	const secretValue = "sup3r-s3cret-value"
	if code, out := cli("config", "set", "hello", "staging", "HELLO_LOG_ENV=1", "--secret", "API_KEY="+secretValue); code != 0 || strings.Contains(out, secretValue) {
		t.Fatalf("config set: %d %s", code, out)
	}
	if code, out := cli("deploy", "hello", "staging", "--output", "json"); code != 0 || strings.Contains(out, secretValue) {
		t.Fatalf("config-only deploy: %d %s", code, out)
	}
	for _, args := range [][]string{{"status", "hello", "--output", "json"}, {"history", "hello"}, {"releases", "hello"}, {"events", "hello"}, {"logs", "hello", "staging"}} {
		if _, out := cli(args...); strings.Contains(out, secretValue) {
			t.Errorf("%v shows a secret value", args)
		}
	}
	// The app printed its environment, secret included: the logs show it redacted.
	if _, out := cli("logs", "hello", "staging"); !strings.Contains(out, "API_KEY=[redacted]") {
		t.Errorf("logs do not show the redacted secret:\n%s", out)
	}

	// Bad input: clear errors, exit 1, nothing changed.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"deploy", "nope", "staging"}, `app "nope": not found`},
		{[]string{"deploy", "hello", "qa"}, `env "qa" is not in cutover.yml`},
		{[]string{"deploy", "hello", "staging", "--commit", "0123456789abcdef0123456789abcdef01234567"}, "not found"},
		{[]string{"deploy", "hello", "staging", "--commit", "--upload-pack=evil"}, "must not start with '-'"},
		{[]string{"deploy", "hello", "staging", "--commit", "$(touch /tmp/pwned)"}, "not allowed"},
		{[]string{"rollback", "hello", "staging", "--steps", "5"}, "cannot go back 5"},
		{[]string{"app", "add", "other", "--repo", filepath.Join(dir, "missing")}, "repo"},
	} {
		code, out := cli(tc.args...)
		if code != exitFail || !strings.Contains(out, tc.want) {
			t.Errorf("%v: exit %d, want 1 with %q; got:\n%s", tc.args, code, tc.want, out)
		}
	}
	// A malformed cutover.yml in a commit: the error names the field and line.
	if err := os.WriteFile(filepath.Join(repo, "cutover.yml"), []byte("build:\n  command: go build\nrun:\n  command: x\nenvironments:\n  staging: {listen: nowhere}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	commit(t, repo, "broken manifest")
	code, out = cli("deploy", "hello", "staging")
	if code != exitFail || !strings.Contains(out, "cutover.yml:6: environments.staging.listen") {
		t.Errorf("malformed manifest: %d %s", code, out)
	}
	hist, _ := srv.Deploy.History(context.Background(), "hello", "staging", 0, 100)
	if len(hist) != 3 {
		t.Errorf("bad input recorded deployments: %d in history, want 3", len(hist))
	}

	// Wrong and missing tokens.
	code, out = run(t, "status", "hello", "--server", srv.URL(), "--token", "wrong-token-123456")
	if code != exitFail || !strings.Contains(out, "token") {
		t.Errorf("wrong token: %d %s", code, out)
	}
	resp, err := http.Get(srv.URL() + "/api/v1/apps")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("no token: %d %s", resp.StatusCode, body)
	}
	// Oversized and unknown-field bodies.
	for _, body := range []string{`{"name":"x","repo":"y","extra":1}`, `{"name":"` + strings.Repeat("a", 2<<20) + `"}`, `not json`} {
		req, _ := http.NewRequest("POST", srv.URL()+"/api/v1/apps", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+srv.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Errorf("body %.30q: status %d, want 400", body, resp.StatusCode)
		}
	}
}

func TestReleaseCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the example app")
	}
	t.Parallel()
	_, repo, cli := startCLIServer(t, "feat: first release", 100*time.Millisecond)
	cli("app", "add", "hello", "--repo", repo)
	if code, out := cli("deploy", "hello", "staging"); code != 0 {
		t.Fatalf("deploy: %s", out)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"release", "cut", "hello", "--version", "1.0"}, exitUsage, `version "1.0"`},
		{[]string{"release", "cut", "hello", "--minor", "--major"}, exitUsage, "one of"},
		{[]string{"release", "check", "hello", "1;2"}, exitUsage, "release candidate"},
		{[]string{"release", "cut", "hello", "--hotfix", "--upload-pack=x"}, exitFail, "must not start with '-'"},
		{[]string{"release", "cut", "hello", "--version", "1.0.0"}, exitOK, "RC 1 cut"},
		{[]string{"release", "notes", "hello", "1"}, exitOK, "## Features\n\n- first release"},
		{[]string{"release", "notes", "hello", "1", "--output", "json"}, exitOK, "\"deployments\": [\n    1\n  ]"},
		{[]string{"release", "check", "hello", "1"}, exitOK, "merges cleanly"},
		{[]string{"release", "finish", "hello", "1"}, exitOK, "tagged v1.0.0"},
		{[]string{"release", "finish", "hello", "1"}, exitOK, "tagged v1.0.0"},
		{[]string{"release", "list", "hello"}, exitOK, "finished"},
		{[]string{"release", "cut", "hello", "--patch"}, exitFail, "already in the production line"},
	} {
		code, out := cli(tc.args...)
		if code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("%v: exit %d, want %d with %q:\n%s", tc.args, code, tc.code, tc.want, out)
		}
	}
	// What changed between two releases: a config-only change shows its keys.
	if code, out := cli("config", "set", "hello", "staging", "MODE=fast", "--secret", "TOKEN=very-secret-token"); code != 0 {
		t.Fatal(out)
	}
	cli("deploy", "hello", "staging")
	code, out := cli("diff", "hello", "1", "2")
	if code != 0 || !strings.Contains(out, "config keys changed: MODE, TOKEN") || strings.Contains(out, "very-secret-token") {
		t.Errorf("diff: %d %s", code, out)
	}

	// A hotfix on the production line and a different change on main: check
	// says the release conflicts with the production line and lacks the
	// hotfix, exits 1, and says nothing about a deployment.
	git := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("git", append([]string{"-C", repo}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
	}
	git("checkout", "-q", "-b", "hotfix", "stages/prod")
	writeFile(t, filepath.Join(repo, "settings.txt"), "hotfix\n")
	commit(t, repo, "fix: hotfix setting")
	for _, args := range [][]string{{"release", "cut", "hello", "--hotfix", "hotfix"}, {"release", "finish", "hello", "1.1"}} {
		if code, out := cli(args...); code != 0 {
			t.Fatalf("%v: %s", args, out)
		}
	}
	git("checkout", "-q", "main")
	writeFile(t, filepath.Join(repo, "settings.txt"), "main\n")
	commit(t, repo, "feat: main setting")
	if code, out := cli("release", "cut", "hello", "--from", "main"); code != 0 || !strings.Contains(out, "Not in this release") {
		t.Fatalf("cut: %d %s", code, out)
	}
	code, out = cli("release", "check", "hello", "2")
	if code != exitFail || !strings.Contains(out, "conflicts with the production line stages/prod") || !strings.Contains(out, "hotfix setting") || strings.Contains(out, "deployment") {
		t.Errorf("check of a conflicting release: exit %d\n%s", code, out)
	}
	code, out = cli("release", "finish", "hello", "2")
	if code != exitFail || !strings.Contains(out, "--drop") {
		t.Errorf("finish of a release lacking a hotfix: exit %d\n%s", code, out)
	}
	if code, out := cli("release", "abandon", "hello", "2"); code != 0 || !strings.Contains(out, "RC 2 abandoned") {
		t.Errorf("abandon: %d %s", code, out)
	}
	if code, out := cli("release", "finish", "hello", "2", "--true-up"); code != exitFail || !strings.Contains(out, "abandoned") {
		t.Errorf("finish of an abandoned release: %d %s", code, out)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	if code, out := run(t, "version"); code != exitOK || !strings.HasPrefix(out, "cutover ") {
		t.Errorf("version = %d %q", code, out)
	}
}

// A commit that does not build: cutover build shows the compiler's output as
// it runs and exits 1 with the build's error, naming no server-side path.
func TestBuildShowsOutputAndFails(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the example app")
	}
	t.Parallel()
	srv, repo, cli := startCLIServer(t, "v1", 300*time.Millisecond)
	if code, out := cli("app", "add", "hello", "--repo", repo); code != 0 {
		t.Fatalf("app add: %d %s", code, out)
	}
	if err := os.WriteFile(filepath.Join(repo, "broken.go"), []byte("package main\n\nthis does not compile\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	commit(t, repo, "broken")
	code, out := cli("build", "hello")
	if code != exitFail || !strings.Contains(out, "build failed") || !strings.Contains(out, "broken.go") {
		t.Fatalf("build of a broken commit = %d\n%s", code, out)
	}
	if strings.Contains(out, srv.DataDir()) {
		t.Errorf("the error names a server-side path:\n%s", out)
	}
}

// logs --follow keeps printing: a deploy that replaces the live colour
// shows up as the new instance's output, until the context ends.
func TestLogsFollow(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the example app")
	}
	t.Parallel()
	srv, repo, cli := startCLIServer(t, "v1", 100*time.Millisecond)
	if code, out := cli("app", "add", "hello", "--repo", repo); code != 0 {
		t.Fatalf("app add: %d %s", code, out)
	}
	if code, out := cli("deploy", "hello", "staging"); code != 0 {
		t.Fatalf("deploy: %d %s", code, out)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &testutil.Buffer{}
	done := make(chan error, 1)
	go func() {
		root := NewRoot()
		root.SetOut(out)
		root.SetErr(out)
		root.SetArgs([]string{"logs", "hello", "staging", "--follow", "--server", srv.URL(), "--data-dir", srv.DataDir()})
		done <- root.ExecuteContext(ctx)
	}()
	waitOutput := func(want string, n int) {
		t.Helper()
		testutil.WaitFor(t, fmt.Sprintf("logs --follow to print %q %d time(s)", want, n), 20*time.Second, func() bool {
			return strings.Count(out.String(), want) >= n
		})
	}
	waitOutput("listening", 1)
	// A config-only release replaces the live colour: its instance's log follows.
	if code, out := cli("config", "set", "hello", "staging", "GREETING=hi"); code != 0 {
		t.Fatalf("config set: %d %s", code, out)
	}
	if code, out := cli("deploy", "hello", "staging"); code != 0 {
		t.Fatalf("config-only deploy: %d %s", code, out)
	}
	waitOutput("listening", 2)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("logs --follow ended with %v after Ctrl-C", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("logs --follow did not stop")
	}
}

// TestDemoRuntimeRefused: an unknown --runtime is a usage error naming the
// value and the accepted ones, before the demo creates anything.
func TestDemoRuntimeRefused(t *testing.T) {
	t.Parallel()
	code, out := run(t, "demo", "--runtime", "bogus")
	if code != exitUsage {
		t.Fatalf("exit %d, want %d; output %q", code, exitUsage, out)
	}
	for _, want := range []string{`"bogus"`, "process", "docker"} {
		if !strings.Contains(out, want) {
			t.Errorf("output %q lacks %q", out, want)
		}
	}
}
