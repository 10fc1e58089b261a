package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cutover/cutover/examples"
	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/deploy"
	"github.com/cutover/cutover/internal/gitx"
	"github.com/cutover/cutover/internal/server"
	"github.com/cutover/cutover/internal/testutil"
)

// env is one end-to-end fixture: a real git repository with the example
// app, a real server (SQLite, process driver, embedded proxy) and helpers.
type env struct {
	t       testing.TB
	repo    string
	data    string
	srv     *server.Server
	svc     *deploy.Service
	staging string
	prod    string
	opts    examples.HelloOptions
	dbURL   string        // PostgreSQL instead of SQLite when set
	docker  server.Docker // the docker runtime's hosts and registry
}

// tick is the deploy machine's lifecycle interval in tests.
const tick = 50 * time.Millisecond

func newEnv(t testing.TB, mutate ...func(*examples.HelloOptions)) *env {
	t.Helper()
	return newEnvOn(t, "", mutate...)
}

func newEnvOn(t testing.TB, dbURL string, mutate ...func(*examples.HelloOptions)) *env {
	t.Helper()
	return newEnvWith(t, &env{dbURL: dbURL}, mutate...)
}

// newEnvWith sets up e (its dbURL and docker fields given).
func newEnvWith(t testing.TB, e *env, mutate ...func(*examples.HelloOptions)) *env {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go toolchain not on PATH: the example app cannot be built")
	}
	dir := t.TempDir()
	e.t, e.repo, e.data = t, filepath.Join(dir, "repo"), filepath.Join(dir, "data")
	e.staging, e.prod = testutil.ListenAddr(t), testutil.ListenAddr(t)
	e.opts = examples.HelloOptions{
		StagingListen: e.staging, ProductionListen: e.prod,
		Verify: 250 * time.Millisecond, StandbyFor: time.Hour, InvestigateFor: time.Hour,
	}
	for _, m := range mutate {
		m(&e.opts)
	}
	if err := examples.WriteHello(e.repo, e.opts); err != nil {
		t.Fatal(err)
	}
	if err := gitx.Init(context.Background(), e.repo); err != nil {
		t.Fatal(err)
	}
	e.commit("v1")
	e.open()
	t.Cleanup(func() { e.close(true) })
	if _, err := e.svc.AddApp(context.Background(), "hello", e.repo); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) open() {
	e.t.Helper()
	srv, err := server.Open(context.Background(), server.Config{
		DataDir: e.data, Listen: "127.0.0.1:0", TickInterval: tick, DatabaseURL: e.dbURL, Docker: e.docker,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.srv, e.svc = srv, srv.Deploy
}

func (e *env) close(stopAll bool) {
	if e.srv == nil {
		return
	}
	if stopAll {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = e.srv.StopAll(ctx)
		cancel()
	}
	_ = e.srv.Close()
	e.srv = nil
}

func (e *env) commit(msg string) string {
	e.t.Helper()
	sha, err := gitx.CommitAll(context.Background(), e.repo, msg)
	if err != nil {
		e.t.Fatal(err)
	}
	return sha
}

// version commits a new Version and failure mode of the example app.
func (e *env) version(v, broken string) string {
	e.t.Helper()
	write(e.t, filepath.Join(e.repo, "version.go"), "package main\n\n// Version is what GET / reports.\nconst Version = \""+v+"\"\n")
	write(e.t, filepath.Join(e.repo, "broken.go"), "package main\n\n// Broken selects a failure mode.\nconst Broken = \""+broken+"\"\n")
	return e.commit(v + " " + broken)
}

func write(t testing.TB, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (e *env) deploy(envName string, want core.DeploymentState) core.Deployment {
	e.t.Helper()
	d, err := e.svc.Deploy(context.Background(), deploy.DeployRequest{App: "hello", Env: envName})
	if err != nil {
		e.t.Fatalf("deploy to %s: %v", envName, err)
	}
	return e.wait(d, want)
}

func (e *env) wait(d core.Deployment, want core.DeploymentState) core.Deployment {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	got, err := e.svc.Wait(ctx, d.ID)
	if err != nil {
		e.t.Fatalf("wait for deployment %d: %v", d.ID, err)
	}
	if got.State != want {
		e.t.Fatalf("deployment %d (%s v%d to %s) ended %s at %s: %q; want %s", got.ID, got.Kind, got.Release, got.Env, got.State, got.Step, got.Reason, want)
	}
	return got
}

// get returns the body of GET / on addr.
func get(t testing.TB, addr string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + addr + "/")
	if err != nil {
		t.Fatalf("GET %s: %v", addr, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

func (e *env) serves(addr, version string) {
	e.t.Helper()
	code, body := get(e.t, addr)
	if code != 200 || !strings.Contains(body, version) {
		e.t.Fatalf("GET %s = %d %q, want 200 with %q", addr, code, body, version)
	}
}

func (e *env) state(envName string) core.EnvState {
	e.t.Helper()
	st, err := e.svc.Status(context.Background(), "hello")
	if err != nil {
		e.t.Fatal(err)
	}
	for _, s := range st {
		if s.Env == envName {
			return s.State
		}
	}
	e.t.Fatalf("no state for %s", envName)
	return core.EnvState{}
}

func TestDeployPromoteAndNoop(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.deploy("staging", core.StateSucceeded)
	e.serves(e.staging, "v1")
	if d.Colour != core.Blue {
		t.Errorf("first deploy colour = %s, want blue", d.Colour)
	}
	e.deploy("production", core.StateSucceeded)
	e.serves(e.prod, "v1")

	// The same artifact: staging and production releases share SHA and digest.
	rels, err := e.svc.Releases(context.Background(), "hello", 10)
	if err != nil || len(rels) != 2 {
		t.Fatalf("releases = %v, %v", rels, err)
	}
	if rels[0].SHA != rels[1].SHA || rels[0].Digest != rels[1].Digest {
		t.Errorf("staging and production releases differ: %+v", rels)
	}

	// Redeploying what is live is a no-op.
	noop, err := e.svc.Deploy(context.Background(), deploy.DeployRequest{App: "hello", Env: "production"})
	if err != nil {
		t.Fatal(err)
	}
	if noop.State != core.StateNoop {
		t.Errorf("redeploy state = %s, want noop", noop.State)
	}
	if rels2, _ := e.svc.Releases(context.Background(), "hello", 10); len(rels2) != 2 {
		t.Errorf("a no-op made a release: %d releases", len(rels2))
	}

	// v2 goes blue -> green; the old colour stays warm as standby.
	e.version("v2", "")
	e.deploy("staging", core.StateSucceeded)
	d2 := e.deploy("production", core.StateSucceeded)
	e.serves(e.prod, "v2")
	st := e.state("production")
	if st.Live != d2.Colour || st.Live != core.Green {
		t.Errorf("live colour = %s, want green", st.Live)
	}
	if sb := st.Slots[core.Blue]; sb == nil || sb.State != core.SlotStandby || len(sb.Instances) == 0 {
		t.Errorf("blue slot = %+v, want a warm standby", sb)
	} else {
		e.serves(sb.Instances[0].Addr, "v1")
	}
}

func TestPromotionRequiresPreviousEnvironment(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d, err := e.svc.Deploy(context.Background(), deploy.DeployRequest{App: "hello", Env: "production"})
	if err != nil {
		t.Fatal(err)
	}
	d = e.wait(d, core.StateFailed)
	if d.Step != core.StepDone || !strings.Contains(d.Reason, "refused by promotion") || !strings.Contains(d.Reason, `"staging"`) {
		t.Fatalf("deploy to production before staging: reason %q, want a refusal by the promotion gate naming staging", d.Reason)
	}
	if rs, _ := e.svc.Releases(context.Background(), "hello", 10); len(rs) != 0 {
		t.Errorf("a refused deployment made a release: %+v", rs)
	}
}

func TestFailuresBeforeSwitchKeepOldRelease(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, broken, reason string
	}{
		{"never healthy", "boot", "health gate"},
		{"smoke check fails", "smoke", "smoke check"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, func(o *examples.HelloOptions) { o.HealthDeadline = 2 * time.Second })
			e.deploy("staging", core.StateSucceeded)
			e.version("v2", tc.broken)
			d := e.deploy("staging", core.StateFailed)
			if !strings.Contains(d.Reason, tc.reason) {
				t.Errorf("reason = %q, want it to mention %q", d.Reason, tc.reason)
			}
			e.serves(e.staging, "v1")
			st := e.state("staging")
			if st.Live != core.Blue {
				t.Errorf("live = %s, want blue", st.Live)
			}
			if g := st.Slots[core.Green]; g != nil && len(g.Instances) > 0 {
				t.Errorf("failed colour still has instances: %+v", g)
			}
			e.noOrphans()
			// The stopped instances' logs stay readable through the deployment.
			logs, err := e.svc.Logs(context.Background(), deploy.LogsRequest{App: "hello", Env: "staging", Deployment: d.ID, Lines: 1})
			if err != nil || len(logs) != 1 || !strings.Contains(logs[0].Log, "hello v2") || strings.Count(logs[0].Log, "\n") != 1 {
				t.Errorf("logs of the failed deployment = %+v, %v; want the last line of v2's log", logs, err)
			}
		})
	}
}

func TestFailureAfterSwitchSwitchesBackAndReverts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *examples.HelloOptions) { o.InvestigateFor = 1500 * time.Millisecond; o.Verify = 3 * time.Second })
	e.deploy("staging", core.StateSucceeded)
	e.version("v2", "after")
	d := e.deploy("staging", core.StateRolledBack)
	if d.SwitchedAt == nil {
		t.Error("a rolled-back deployment should record when it switched")
	}
	e.serves(e.staging, "v1")
	st := e.state("staging")
	failed := st.Slots[core.Green]
	if failed == nil || failed.State != core.SlotFailed || len(failed.Instances) == 0 {
		t.Fatalf("green = %+v, want the failed colour kept for investigation", failed)
	}
	// Still reachable directly for investigation.
	if code, _ := get(t, failed.Instances[0].Addr); code == 0 {
		t.Fatal("failed colour not reachable")
	}
	// After investigate_for it is reverted to the live release, as a recorded deployment.
	var g *core.Slot
	waitShowing(t, "the failed colour to be reverted to the live release", 20*time.Second, func() bool {
		st = e.state("staging")
		g = st.Slots[core.Green]
		return g != nil && g.State == core.SlotStandby && g.Release == st.LiveRelease()
	}, func() string { return fmt.Sprintf("failed colour not reverted: %+v", g) })
	e.serves(g.Instances[0].Addr, "v1")
	hist, _ := e.svc.History(context.Background(), "hello", "staging", 0, 10)
	if hist[0].Kind != core.KindRevert || hist[0].State != core.StateSucceeded {
		t.Errorf("newest deployment = %s %s, want a succeeded revert", hist[0].Kind, hist[0].State)
	}
}

func TestRollbackStepsAndConfirm(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.deploy("staging", core.StateSucceeded) // v1
	e.version("v2", "")
	e.deploy("staging", core.StateSucceeded)
	e.version("v3", "")
	e.deploy("staging", core.StateSucceeded)
	e.serves(e.staging, "v3")

	// One step: v2 is still warm in the standby colour.
	rb, err := e.svc.Rollback(context.Background(), deploy.RollbackRequest{App: "hello", Env: "staging"})
	if err != nil {
		t.Fatal(err)
	}
	e.wait(rb, core.StateSucceeded)
	e.serves(e.staging, "v2")

	// A second rollback goes further back, to v1, never forward to v3,
	// which the first one left: v3 is not a rollback target any more, so
	// two steps back from v2 do not exist.
	if _, err := e.svc.Rollback(context.Background(), deploy.RollbackRequest{App: "hello", Env: "staging", Steps: 2}); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("two steps back from v2 after leaving v3: err = %v, want ErrInvalid", err)
	}
	rb, err = e.svc.Rollback(context.Background(), deploy.RollbackRequest{App: "hello", Env: "staging"})
	if err != nil {
		t.Fatal(err)
	}
	got := e.wait(rb, core.StateSucceeded)
	if got.Kind != core.KindRollback {
		t.Errorf("kind = %s, want rollback", got.Kind)
	}
	e.serves(e.staging, "v1")

	if _, err := e.svc.Rollback(context.Background(), deploy.RollbackRequest{App: "hello", Env: "staging", Steps: 9}); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("rollback 9 steps: err = %v, want ErrInvalid", err)
	}

	// Confirm brings the standby colour to the live release.
	c, err := e.svc.Confirm(context.Background(), "hello", "staging", "tester")
	if err != nil {
		t.Fatal(err)
	}
	e.wait(c, core.StateSucceeded)
	st := e.state("staging")
	sb := st.Slots[st.Live.Other()]
	if sb.Release != st.LiveRelease() || len(sb.Instances) == 0 || st.Verified != st.LiveRelease() {
		t.Errorf("after confirm: standby %+v, verified %d, live %d", sb, st.Verified, st.LiveRelease())
	}
	e.serves(sb.Instances[0].Addr, "v1")
}

func TestConcurrentDeploysQueueOrRefuse(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.deploy("staging", core.StateSucceeded)
	e.version("v2", "")
	ctx := context.Background()
	first, err := e.svc.Deploy(ctx, deploy.DeployRequest{App: "hello", Env: "staging"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.Deploy(ctx, deploy.DeployRequest{App: "hello", Env: "staging", NoWait: true})
	if !errors.Is(err, core.ErrLocked) || !strings.Contains(err.Error(), "deployment") {
		t.Errorf("no-wait deploy while busy: err = %v, want ErrLocked naming the holder", err)
	}
	e.wait(first, core.StateSucceeded)

	// Two at once, queued: both end, in order, and exactly one release serves.
	e.version("v3", "")
	var wg sync.WaitGroup
	ds := make([]core.Deployment, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ds[i], errs[i] = e.svc.Deploy(ctx, deploy.DeployRequest{App: "hello", Env: "staging"})
		}()
	}
	wg.Wait()
	outcomes := map[core.DeploymentState]int{}
	for i := range 2 {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		got, err := e.svc.Wait(wctx, ds[i].ID)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		outcomes[got.State]++
	}
	// The same commit twice: one switch, one no-op (queued behind it, or seen live).
	if outcomes[core.StateSucceeded] != 1 || outcomes[core.StateNoop] != 1 {
		t.Errorf("outcomes = %v, want one succeeded and one noop", outcomes)
	}
	e.serves(e.staging, "v3")
	e.noOrphans()
}

// noOrphans checks that every running instance belongs to a slot.
func (e *env) noOrphans() {
	e.t.Helper()
	st, err := e.svc.Status(context.Background(), "hello")
	if err != nil {
		e.t.Fatal(err)
	}
	known := map[int]bool{}
	for _, s := range st {
		for _, sl := range s.State.Slots {
			for _, in := range sl.Instances {
				if pid, _ := strconv.Atoi(in.Data["pid"]); pid > 0 {
					known[pid] = true
				}
			}
		}
	}
	for _, pid := range helloPIDs(e.t, e.data) {
		if !known[pid] {
			e.t.Errorf("orphan process %d", pid)
		}
	}
}

// helloPIDs lists processes whose working directory is under the data dir.
func helloPIDs(t testing.TB, data string) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Skip("no /proc")
	}
	var out []int
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		cwd, err := os.Readlink(filepath.Join("/proc", ent.Name(), "cwd"))
		if err != nil {
			continue
		}
		if strings.HasPrefix(cwd, data) {
			out = append(out, pid)
		}
	}
	return out
}

// TestConfigOnlyReleaseAndRollbackKeepTheirConfig: a config change is a new
// release of the same artifact, and rolling back returns to the config the
// earlier release was made with (none), not the latest.
func TestConfigOnlyReleaseAndRollbackKeepTheirConfig(t *testing.T) {
	t.Parallel()
	// A short standby time: the old colour is scaled in, so the rollback
	// starts it cold from its release record.
	e := newEnv(t, func(o *examples.HelloOptions) { o.StandbyFor = 200 * time.Millisecond })
	e.deploy("staging", core.StateSucceeded)
	e.serves(e.staging, "hello from v1")
	if _, err := e.svc.SetConfig(context.Background(), "hello", "staging", map[string]string{"GREETING": "howdy"}, nil); err != nil {
		t.Fatal(err)
	}
	d := e.deploy("staging", core.StateSucceeded)
	e.serves(e.staging, "howdy from v1")
	testutil.WaitFor(t, "the standby to scale in", 10*time.Second, func() bool {
		sb := e.state("staging").Slots[core.Blue]
		return sb == nil || len(sb.Instances) == 0
	})
	rb, err := e.svc.Rollback(context.Background(), deploy.RollbackRequest{App: "hello", Env: "staging"})
	if err != nil {
		t.Fatal(err)
	}
	got := e.wait(rb, core.StateSucceeded)
	if got.Release == d.Release {
		t.Fatal("rollback went nowhere")
	}
	e.serves(e.staging, "hello from v1")
}

// A live instance killed behind cutover's back is restarted, and the
// environment serves again; status says degraded meanwhile.
func TestKilledInstanceIsRestarted(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.deploy("staging", core.StateSucceeded)
	live := e.state("staging").Slots[core.Blue].Instances[0]
	pid, _ := strconv.Atoi(live.Data["pid"])
	if pid <= 0 {
		t.Fatalf("no pid for %+v", live)
	}
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var insts []core.Instance
	var degraded string
	waitShowing(t, "the killed instance to be replaced", 30*time.Second, func() bool {
		st, err := e.svc.Status(context.Background(), "hello")
		if err != nil {
			t.Fatal(err)
		}
		insts, degraded = st[0].State.Slots[core.Blue].Instances, st[0].Degraded
		return degraded == "" && len(insts) == 1 && insts[0].ID != live.ID
	}, func() string {
		return fmt.Sprintf("the killed instance was not replaced: %+v (degraded %q)", insts, degraded)
	})
	e.serves(e.staging, "v1")
	es, _ := e.svc.Events(context.Background(), "hello", 0, 1000)
	var types []string
	for _, ev := range es {
		if strings.HasPrefix(string(ev.Type), "instance.") {
			types = append(types, string(ev.Type))
		}
	}
	if strings.Join(types, " ") != "instance.exited instance.restarted" {
		t.Errorf("instance events = %v", types)
	}
}

// cutover stop takes an environment out of service through the real proxy
// and processes; a deploy brings it back.
func TestStopEnvironment(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.deploy("staging", core.StateSucceeded)
	d, err := e.svc.Stop(context.Background(), "hello", "staging", "tester")
	if err != nil {
		t.Fatal(err)
	}
	e.wait(d, core.StateSucceeded)
	if code, _ := get(t, e.staging); code == 200 {
		t.Errorf("a stopped environment still answers 200")
	}
	e.noOrphans()
	if pids := helloPIDs(t, e.data); len(pids) != 0 {
		t.Errorf("instances still run after stop: %v", pids)
	}
	e.deploy("staging", core.StateSucceeded)
	e.serves(e.staging, "v1")
}

// An app can be removed once its environments are stopped; its artifacts
// go with it, its timeline stays, and the name can be added again.
func TestRemoveApp(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	e.deploy("staging", core.StateSucceeded)
	if err := e.svc.RemoveApp(ctx, "hello", "tester"); !errors.Is(err, core.ErrConflict) || !strings.Contains(err.Error(), "cutover stop hello staging") {
		t.Fatalf("remove a running app: %v", err)
	}
	d, err := e.svc.Stop(ctx, "hello", "staging", "tester")
	if err != nil {
		t.Fatal(err)
	}
	e.wait(d, core.StateSucceeded)
	arts := filepath.Join(e.data, "artifacts", "hello")
	if entries, _ := os.ReadDir(arts); len(entries) == 0 {
		t.Fatal("no artifact on disk before the removal")
	}
	if err := e.svc.RemoveApp(ctx, "hello", "tester"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.App(ctx, "hello"); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("removed app: %v", err)
	}
	if entries, _ := os.ReadDir(arts); len(entries) != 0 {
		t.Errorf("artifacts left on disk: %v", entries)
	}
	if es, _ := e.svc.Events(ctx, "", 0, 1000); len(es) == 0 || es[len(es)-1].Type != core.EventAppRemoved {
		t.Errorf("the timeline does not end with the removal")
	}
	if _, err := e.svc.AddApp(ctx, "hello", e.repo); err != nil {
		t.Fatalf("add the name again: %v", err)
	}
	e.deploy("staging", core.StateSucceeded)
}
