package deploy_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/deploy"
	"github.com/cutover/cutover/internal/manifest"
	"github.com/cutover/cutover/internal/store/memstore"
	"github.com/cutover/cutover/internal/testutil"
)

// The fakes below stand in for the runtime, the proxy, the builder and git
// so the deploy machine's decisions can be driven in milliseconds. Each
// behaviour is a function field a test replaces (Nomad's deploymentwatcher
// tests are the model); the end-to-end tests in internal/server run the
// same machine on real processes, sockets and SQLite.

// testManifest has every deadline shrunk so a test runs the real logic fast.
const testManifest = `app: hello
build:
  command: [go, build]
run:
  command: [bin/hello]
health:
  path: /up
  interval: 2ms
  timeout: 200ms
  deadline: 300ms
smoke:
  - name: home page
    path: /
    status: 200
migrate:
  command: [bin/hello, migrate]
  timeout: 5s
verify:
  for: 60ms
  max_error_rate: 0.01
  min_requests: 1
standby_for: 1h
investigate_for: 1h
stop_grace: 10ms
environments:
  staging:
    listen: 127.0.0.1:1
    instances: 2
  production:
    listen: 127.0.0.1:2
    instances: 1
    from: staging
`

type fakeDriver struct {
	mu      sync.Mutex
	n       int
	running map[string]core.Instance
	started []core.GroupSpec
	tasks   []core.TaskSpec
	// The behaviours; nil means success.
	StartFn  func(spec core.GroupSpec) error
	ProbeFn  func(in core.Instance, req core.ProbeRequest) (core.ProbeResult, error)
	TaskFn   func(ctx context.Context, spec core.TaskSpec, out io.Writer) error
	ExitedFn func(in core.Instance) (string, bool)
	StopFn   func(insts []core.Instance)
	// LogsFn returns what an instance's log holds, cut to maxBytes.
	LogsFn func(in core.Instance, maxBytes int64) string
}

func newFakeDriver() *fakeDriver { return &fakeDriver{running: map[string]core.Instance{}} }

func (f *fakeDriver) Start(ctx context.Context, spec core.GroupSpec) ([]core.Instance, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.started = append(f.started, spec)
	if f.StartFn != nil {
		if err := f.StartFn(spec); err != nil {
			return nil, err
		}
	}
	var out []core.Instance
	for i := range spec.Count {
		f.n++
		in := core.Instance{ID: fmt.Sprintf("%s-%s-%s-r%d-%d", spec.App, spec.Env, spec.Colour, spec.Release, f.n), App: spec.App, Env: spec.Env,
			Colour: spec.Colour, Release: spec.Release, Addr: fmt.Sprintf("10.0.0.%d:%d", f.n, 8000+i)}
		f.running[in.ID] = in
		out = append(out, in)
	}
	return out, nil
}

func (f *fakeDriver) Stop(ctx context.Context, insts []core.Instance, grace time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.StopFn != nil && len(insts) > 0 {
		f.StopFn(insts)
	}
	for _, in := range insts {
		delete(f.running, in.ID)
	}
	return nil
}

func (f *fakeDriver) List(ctx context.Context) ([]core.Instance, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []core.Instance
	for _, in := range f.running {
		out = append(out, in)
	}
	return out, nil
}

func (f *fakeDriver) RunTask(ctx context.Context, spec core.TaskSpec, out io.Writer) error {
	f.mu.Lock()
	f.tasks = append(f.tasks, spec)
	fn := f.TaskFn
	f.mu.Unlock()
	if fn != nil {
		return fn(ctx, spec, out)
	}
	fmt.Fprintln(out, "migrated")
	return nil
}

func (f *fakeDriver) Logs(ctx context.Context, in core.Instance, maxBytes int64, w io.Writer) error {
	text := "listening\n"
	if f.LogsFn != nil {
		text = f.LogsFn(in, maxBytes)
	}
	_, err := io.WriteString(w, text)
	return err
}

func (f *fakeDriver) Probe(ctx context.Context, in core.Instance, req core.ProbeRequest) (core.ProbeResult, error) {
	f.mu.Lock()
	_, running := f.running[in.ID]
	fn := f.ProbeFn
	f.mu.Unlock()
	if !running {
		return core.ProbeResult{}, errors.New("connection refused")
	}
	if fn != nil {
		return fn(in, req)
	}
	return core.ProbeResult{Status: http.StatusOK, Body: []byte("ok")}, nil
}

func (f *fakeDriver) Exited(ctx context.Context, in core.Instance) (string, bool) {
	if f.ExitedFn != nil {
		return f.ExitedFn(in)
	}
	return "", false
}

// runningReleases lists the releases of the instances running, sorted.
func (f *fakeDriver) runningReleases() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []int
	for _, in := range f.running {
		out = append(out, in.Release)
	}
	slices.Sort(out)
	return out
}

func (f *fakeDriver) startedReleases() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []int
	for _, s := range f.started {
		out = append(out, s.Release)
	}
	return out
}

type fakeRouter struct {
	mu     sync.Mutex
	routes map[string]deploy.RouteSpec
	// StatsFn returns the counters of a service whose active colour runs
	// release; nil means no traffic.
	StatsFn func(release int) deploy.RouteStats
	RouteFn func(spec deploy.RouteSpec) error
}

func newFakeRouter() *fakeRouter { return &fakeRouter{routes: map[string]deploy.RouteSpec{}} }

func (f *fakeRouter) Route(ctx context.Context, spec deploy.RouteSpec) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.RouteFn != nil {
		if err := f.RouteFn(spec); err != nil {
			return err
		}
	}
	f.routes[spec.Service] = spec
	return nil
}

func (f *fakeRouter) Stats(ctx context.Context, service string) (deploy.RouteStats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.routes[service]
	if !ok {
		return deploy.RouteStats{}, fmt.Errorf("service %s not routed", service)
	}
	if f.StatsFn == nil {
		return deploy.RouteStats{}, nil
	}
	return f.StatsFn(r.Release), nil
}

func (f *fakeRouter) Remove(ctx context.Context, service string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.routes, service)
	return nil
}

func (f *fakeRouter) route(service string) deploy.RouteSpec {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.routes[service]
}

type fakeBuilder struct {
	m       *manifest.Manifest
	mu      sync.Mutex
	builds  int
	removed map[string]bool
	// available answers deploy.ArtifactChecker (nil: every artifact is).
	available func(a core.Artifact) error
	// started and release, when set, hold a build until release closes.
	started, release chan struct{}
}

func (f *fakeBuilder) Available(ctx context.Context, a core.Artifact) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.available == nil {
		return nil
	}
	return f.available(a)
}

func (f *fakeBuilder) Build(ctx context.Context, app core.App, sha string, logw io.Writer) (core.Artifact, *manifest.Manifest, error) {
	f.mu.Lock()
	f.builds++
	started, release := f.started, f.release
	f.mu.Unlock()
	if release != nil {
		started <- struct{}{}
		<-release
	}
	return core.Artifact{App: app.Name, SHA: sha, Digest: "sha256:" + sha, Ref: "/artifacts/" + sha, CreatedAt: time.Now()}, f.m, nil
}

func (f *fakeBuilder) Manifest(ctx context.Context, a core.Artifact) (*manifest.Manifest, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.removed[a.SHA] {
		return nil, fmt.Errorf("artifact %s: no such directory", a.Ref)
	}
	return f.m, nil
}

func (f *fakeBuilder) Remove(ctx context.Context, a core.Artifact) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.removed == nil {
		f.removed = map[string]bool{}
	}
	f.removed[a.SHA] = true
	return nil
}

// fakeSource resolves refs named c1, c2, ... to SHAs of repeated digits
// (HEAD to fff...).
type fakeSource struct{ manifest []byte }

func sha(n int) string { return strings.Repeat(fmt.Sprintf("%x", n%16), 40) }

func (f fakeSource) ResolveCommit(ctx context.Context, repo, ref string) (string, error) {
	if ref == "HEAD" {
		return sha(15), nil
	}
	var n int
	if _, err := fmt.Sscanf(ref, "c%d", &n); err != nil {
		return "", fmt.Errorf("%w: unknown ref %q", core.ErrNotFound, ref)
	}
	return sha(n), nil
}

// Log makes every commit authored by "dev" (dev@example.com).
func (f fakeSource) Log(ctx context.Context, repo, from, to string) ([]core.Commit, error) {
	return []core.Commit{{SHA: to, Author: "dev", Email: "dev@example.com"}}, nil
}

func (f fakeSource) ReadFile(ctx context.Context, repo, sha, path string) ([]byte, error) {
	return f.manifest, nil
}

// flagGate makes deployments to an environment wait until open is called.
type flagGate struct {
	env string
	mu  sync.Mutex
	ok  bool
}

func (g *flagGate) Name() string { return "flag" }

func (g *flagGate) Decide(ctx context.Context, in deploy.GateInput) (deploy.Decision, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if in.Env.Name != g.env || g.ok {
		return deploy.Allowed(), nil
	}
	return deploy.Waiting("the test flag", time.Time{}), nil
}

func (g *flagGate) open() {
	g.mu.Lock()
	g.ok = true
	g.mu.Unlock()
}

// rig is one deploy machine on fakes and an in-memory store.
type rig struct {
	t       *testing.T
	store   *memstore.Store
	driver  *fakeDriver
	router  *fakeRouter
	builder *fakeBuilder
	gates   []deploy.Gate
	svc     *deploy.Service

	clockMu sync.Mutex
	offset  time.Duration // the machine's clock runs this far ahead of the real one
}

func (r *rig) now() time.Time {
	r.clockMu.Lock()
	defer r.clockMu.Unlock()
	return time.Now().Add(r.offset)
}

// advance moves the machine's clock forward.
func (r *rig) advance(d time.Duration) {
	r.clockMu.Lock()
	r.offset += d
	r.clockMu.Unlock()
}

func newRig(t *testing.T) *rig {
	t.Helper()
	m, err := manifest.Parse([]byte(testManifest))
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, store: memstore.New(), driver: newFakeDriver(), router: newFakeRouter(), builder: &fakeBuilder{m: m}}
	if err := r.store.CreateApp(context.Background(), core.App{Name: "hello", Repo: "/repo"}); err != nil {
		t.Fatal(err)
	}
	return r
}

// start builds a machine on the rig's parts (a second call is a restart).
func (r *rig) start() *deploy.Service {
	r.t.Helper()
	svc, err := deploy.New(deploy.Config{Store: r.store, Driver: r.driver, Router: r.router, Builder: r.builder,
		Source: fakeSource{manifest: []byte(testManifest)}, TickInterval: time.Hour, Gates: r.gates, Holder: "test", Now: r.now})
	if err != nil {
		r.t.Fatal(err)
	}
	if err := svc.Start(context.Background()); err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(svc.Close)
	r.svc = svc
	return svc
}

func (r *rig) deploy(env, ref string) core.Deployment {
	r.t.Helper()
	d, err := r.svc.Deploy(context.Background(), deploy.DeployRequest{App: "hello", Env: env, Ref: ref, RequestedBy: "ann"})
	if err != nil {
		r.t.Fatalf("deploy %s to %s: %v", ref, env, err)
	}
	return d
}

func (r *rig) wait(d core.Deployment) core.Deployment {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := r.svc.Wait(ctx, d.ID)
	if err != nil {
		r.t.Fatalf("wait for deployment %d: %v (state %s at %s)", d.ID, err, got.State, got.Step)
	}
	return got
}

func (r *rig) deployAndWait(env, ref string, want core.DeploymentState) core.Deployment {
	r.t.Helper()
	d := r.wait(r.deploy(env, ref))
	if d.State != want {
		r.t.Fatalf("deployment %d of %s to %s ended %s at %s: %q; want %s", d.ID, ref, env, d.State, d.Step, d.Reason, want)
	}
	return d
}

func (r *rig) state(env string) core.EnvState {
	r.t.Helper()
	st, err := r.store.GetEnvState(context.Background(), "hello", env)
	if err != nil {
		r.t.Fatal(err)
	}
	return st
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.WaitFor(t, what, 10*time.Second, cond)
}
