package server_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/cutover/cutover/examples"
	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/gitx"
	"github.com/cutover/cutover/internal/proxy"
	"github.com/cutover/cutover/internal/testutil"
)

// pgSchema gives a test its own schema in the database named by
// CUTOVER_TEST_POSTGRES and returns a DSN that uses it.
func pgSchema(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv("CUTOVER_TEST_POSTGRES")
	if dsn == "" {
		t.Skip("CUTOVER_TEST_POSTGRES is not set (a postgres:// DSN); .ci/run starts PostgreSQL and sets it")
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "ha_" + hex.EncodeToString(b)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Exec("DROP SCHEMA " + schema + " CASCADE"); db.Close() })
	u, _ := url.Parse(dsn)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// startProxy runs `cutover proxy run` on its own: the traffic path the
// control planes share, so a control plane that dies or pauses takes no
// listener with it.
func startProxy(t *testing.T, bin, dir, listen string) string {
	t.Helper()
	sock := filepath.Join(dir, "proxy.sock")
	px := exec.Command(bin, "proxy", "run", "--listen", listen, "--admin", sock, "--state", filepath.Join(dir, "proxy"))
	if err := px.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { px.Process.Kill(); px.Wait() })
	admin, _ := proxy.NewAdminClient(sock, "")
	testutil.WaitFor(t, "the proxy's admin socket to answer", 10*time.Second, func() bool {
		return admin.Do(context.Background(), "GET", "/services", nil, nil) == nil
	})
	return sock
}

// TestTwoServersOneDatabase runs two control planes on one PostgreSQL
// database behind one proxy. One holds the lease and runs deployments; the
// other refuses changes naming it. When the holder is SIGKILLed mid-deploy
// the other takes over within the lease TTL and settles the deployment.
// When a holder is SIGSTOPped mid-deploy and another takes over, the old
// one wakes up unable to write: the settled deployment is never rewritten
// and the woken server steps down.
func TestTwoServersOneDatabase(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and the example app")
	}
	db := pgSchema(t)
	t.Parallel()
	bin := cutoverBin(t)
	dir := t.TempDir()
	listen := testutil.ListenAddr(t)
	sock := startProxy(t, bin, dir, listen)
	e := &env{t: t, repo: filepath.Join(dir, "repo")}
	opts := examples.HelloOptions{StagingListen: listen, ProductionListen: testutil.ListenAddr(t), Verify: 250 * time.Millisecond}
	if err := examples.WriteHello(e.repo, opts); err != nil {
		t.Fatal(err)
	}
	if err := gitx.Init(context.Background(), e.repo); err != nil {
		t.Fatal(err)
	}
	e.commit("v1")
	// Both servers share the instance directory: they stand for two
	// control planes of one host's runtime.
	data := filepath.Join(dir, "data")
	start := func(name string) *proc {
		return startServer(t, bin, data, "--database", db, "--proxy-admin", sock, "--name", name, "--lease-ttl", "2s")
	}
	a := start("server-a")
	b := start("server-b")
	if !strings.Contains(b.log.String(), "standby") {
		t.Fatalf("the second server does not say it is a standby:\n%s", b.log.String())
	}
	var refusal struct{ Error string }
	if code := b.call("POST", "/api/v1/apps", map[string]string{"name": "hello", "repo": e.repo}, &refusal); code != 503 || !strings.Contains(refusal.Error, "server-a") {
		t.Fatalf("change on the standby = %d %q; want 503 naming server-a", code, refusal.Error)
	}
	if code := a.call("POST", "/api/v1/apps", map[string]string{"name": "hello", "repo": e.repo}, nil); code != 201 {
		t.Fatalf("add app on the active server: %d\n%s", code, a.log.String())
	}
	if code := b.call("GET", "/api/v1/apps/hello", nil, nil); code != 200 {
		t.Errorf("a standby answers queries: %d", code)
	}
	v1 := a.deploy("staging")
	a.waitFor(v1.ID, func(d core.Deployment) bool { return d.State.Terminal() }, 60*time.Second)
	e.serves(listen, "v1")

	// SIGKILL of the holder in the middle of verification, which from v2
	// on lasts long enough to stop a server in it.
	opts.Verify = 20 * time.Second
	if err := examples.WriteHello(e.repo, opts); err != nil {
		t.Fatal(err)
	}
	e.version("v2", "")
	d := a.deploy("staging")
	a.waitFor(d.ID, func(d core.Deployment) bool { return d.Step == core.StepVerify || d.State.Terminal() }, 60*time.Second)
	a.kill()
	got := b.waitFor(d.ID, func(d core.Deployment) bool { return d.State.Terminal() }, 30*time.Second)
	if got.State != core.StateRolledBack || !strings.Contains(got.Reason, "restarted") {
		t.Fatalf("deployment interrupted by the holder's death = %s %q; want rolled back by the new holder", got.State, got.Reason)
	}
	e.serves(listen, "v1")

	// SIGSTOP of the new holder in the middle of verification; the old
	// one, restarted, takes over.
	a = start("server-a")
	d = b.deploy("staging")
	b.waitFor(d.ID, func(d core.Deployment) bool { return d.Step == core.StepVerify || d.State.Terminal() }, 60*time.Second)
	if err := b.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	settled := a.waitFor(d.ID, func(d core.Deployment) bool { return d.State.Terminal() }, 30*time.Second)
	if settled.State != core.StateRolledBack {
		t.Fatalf("deployment of the paused holder = %s %q; want rolled back by the new holder", settled.State, settled.Reason)
	}
	if err := b.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitShowing(t, "the woken server to notice it lost the lease", 30*time.Second, func() bool {
		return strings.Contains(b.log.String(), "lease lost")
	}, func() string { return "its log:\n" + b.log.String() })
	if after := a.deployment(d.ID); after.State != settled.State || after.Reason != settled.Reason || !after.UpdatedAt.Equal(settled.UpdatedAt) {
		t.Errorf("the woken server rewrote the settled deployment: %+v, was %+v", after, settled)
	}
	var events []core.Event
	a.call("GET", "/api/v1/events?app=hello", nil, &events)
	var last core.Event
	for _, ev := range events {
		if ev.DeploymentID == d.ID {
			last = ev
		}
	}
	if last.Step != core.StepDone || last.Type != core.OutcomeEvent(settled.State) {
		t.Errorf("the last event of deployment %d is %s %q: written after it was settled", d.ID, last.Type, last.Message)
	}
	if code := b.call("POST", "/api/v1/apps/hello/envs/staging/deployments", map[string]any{}, &refusal); code != 503 || !strings.Contains(refusal.Error, "server-a") {
		t.Errorf("change on the deposed server = %d %q; want 503 naming server-a", code, refusal.Error)
	}
	// The active server takes changes.
	var c core.Deployment
	if code := a.call("POST", "/api/v1/apps/hello/envs/staging/confirm", nil, &c); code != 202 {
		t.Fatalf("confirm on the new holder = %d", code)
	}
	if got := a.waitFor(c.ID, func(d core.Deployment) bool { return d.State.Terminal() }, 30*time.Second); got.State != core.StateSucceeded {
		t.Errorf("confirm on the new holder = %s %q", got.State, got.Reason)
	}
}

// TestDeployFollowsAcrossServerRestart runs `cutover deploy` while the
// server is killed and restarted in the middle of verification: the CLI
// reconnects and ends with the deployment's real outcome and exit code,
// never 0 for a deployment that did not go live.
func TestDeployFollowsAcrossServerRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and the example app")
	}
	t.Parallel()
	bin := cutoverBin(t)
	dir := t.TempDir()
	e := &env{t: t, repo: filepath.Join(dir, "repo")}
	opts := examples.HelloOptions{StagingListen: testutil.ListenAddr(t), ProductionListen: testutil.ListenAddr(t), Verify: 250 * time.Millisecond}
	if err := examples.WriteHello(e.repo, opts); err != nil {
		t.Fatal(err)
	}
	if err := gitx.Init(context.Background(), e.repo); err != nil {
		t.Fatal(err)
	}
	e.commit("v1")
	data, api := filepath.Join(dir, "data"), testutil.ListenAddr(t)
	p := startServer(t, bin, data, "--listen", api)
	if code := p.call("POST", "/api/v1/apps", map[string]string{"name": "hello", "repo": e.repo}, nil); code != 201 {
		t.Fatalf("add app: %d", code)
	}
	first := p.deploy("staging")
	p.waitFor(first.ID, func(d core.Deployment) bool { return d.State.Terminal() }, 60*time.Second)

	opts.Verify = 20 * time.Second
	if err := examples.WriteHello(e.repo, opts); err != nil {
		t.Fatal(err)
	}
	e.version("v2", "")
	cli := exec.Command(bin, "deploy", "hello", "staging")
	cli.Env = append(os.Environ(), "CUTOVER_SERVER=http://"+api, "CUTOVER_TOKEN="+crashToken)
	out := &testutil.Buffer{}
	cli.Stdout, cli.Stderr = out, out
	if err := cli.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cli.Wait() }()
	t.Cleanup(func() { cli.Process.Kill() })
	waitShowing(t, "the deployment to reach verification", 60*time.Second, func() bool {
		return strings.Contains(out.String(), "verifying live traffic")
	}, func() string { return "the CLI's output:\n" + out.String() })
	p.kill()
	startServer(t, bin, data, "--listen", api) // the restart the CLI must ride through
	var err error
	select {
	case err = <-exited:
	case <-time.After(60 * time.Second):
		t.Fatalf("the CLI did not end after the restart:\n%s", out.String())
	}
	var xe *exec.ExitError
	if !errors.As(err, &xe) || xe.ExitCode() != 1 {
		t.Fatalf("cutover deploy exit = %v, want 1 (the deployment was rolled back)\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "rolled_back") || !strings.Contains(out.String(), "reconnecting") {
		t.Errorf("the CLI did not say it reconnected and how the deployment ended:\n%s", out.String())
	}
	t.Logf("cutover deploy across a restart:\n%s", out.String())
}
