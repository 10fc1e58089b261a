package server_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/cutover/cutover/examples"
	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/deploy"
	"github.com/cutover/cutover/internal/driver/docker"
	"github.com/cutover/cutover/internal/gitx"
	"github.com/cutover/cutover/internal/server"
	"github.com/cutover/cutover/internal/store/sqlite"
	"github.com/cutover/cutover/internal/testutil"
)

// dockerKillSettle bounds how long a restarted server may take to settle
// the environment (a rebuild after a kill during the push included).
const dockerKillSettle = 60 * time.Second

// TestDockerServerKilledMidDeploy is the Docker runtime's crash test: the
// server binary runs the hello app on the local engine (as host a, images
// pushed to a registry in the test process), deploys v1 to staging, then
// is SIGKILLed at a point of v2's deploy: while the image is pushed,
// while v2's container is being created, during the health gate, and
// during verification after the switch. Started again on the same data
// dir, it must settle the environment with exactly one live release that
// the proxy serves, and no running container of this installation that no
// slot knows. The containers and images the test made are removed at the
// end and none of the installation's is left.
func TestDockerServerKilledMidDeploy(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts real servers running Docker containers")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := docker.Available(ctx); err != nil {
		t.Skipf("docker: no engine reachable at %s: %v", docker.LocalAddress(), err)
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go toolchain not on PATH: the example app cannot be built")
	}
	t.Parallel()
	bin := cutoverBin(t)
	reg := startGatedRegistry(t)
	api, err := client.New(client.FromEnv, client.WithHost(docker.LocalAddress()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = api.Close() })

	for _, tc := range []struct {
		name   string
		broken string // v2's failure mode
		// kill waits for the moment to kill the server running v2's deploy.
		kill func(k *dockerKill, id int64)
		// failed: the deploy must end failed by the restart, v1 serving
		// (a kill during the build is recovered by building again).
		failed bool
	}{
		{"during image push", "", func(k *dockerKill, _ int64) { k.untilPush() }, false},
		{"while containers are created", "", func(k *dockerKill, _ int64) { k.untilContainer(core.Green) }, true},
		{"during health gate", "slow", func(k *dockerKill, id int64) { k.untilStep(id, core.StepHealth) }, true},
		{"during verification after the switch", "", func(k *dockerKill, id int64) { k.untilStep(id, core.StepVerify) }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			k := newDockerKill(t, bin, reg, api)
			k.deployV1()

			k.opts.Verify = 20 * time.Second // long enough to be killed during it
			if err := examples.WriteHello(k.e.repo, k.opts); err != nil {
				t.Fatal(err)
			}
			k.versions[k.e.version("v2", tc.broken)] = "v2"
			if tc.name == "during image push" {
				reg.arm(k.regPath)
			}
			d := k.p.deploy("staging")
			began := time.Now()
			tc.kill(k, d.ID)
			k.p.kill()
			reg.disarm(k.regPath)
			killed := time.Since(began).Round(time.Millisecond)

			at, strays := k.afterKill(d.ID)
			k.p = startServer(t, bin, k.data, k.flags...)
			got := k.waitTerminal(d.ID)
			live := k.settle()
			t.Logf("killed %s after %s, deployment %d at %s/%s; v2 containers then: %v; ones no slot knew (not stopped): %v; after restart: %s %q; live #%d (%s)",
				tc.name, killed, d.ID, at.State, at.Step, k.v2, strays, got.State, got.Reason, live.Number, k.versions[live.SHA])
			if tc.failed {
				if got.State == core.StateSucceeded {
					t.Errorf("deployment interrupted at %s ended %s, want failed or rolled back", at.Step, got.State)
				}
				if !strings.Contains(got.Reason, "restarted") {
					t.Errorf("reason = %q, want it to say the server restarted", got.Reason)
				}
				if v := k.versions[live.SHA]; v != "v1" {
					t.Errorf("live release is %s, want v1", v)
				}
			}
			k.servesLive(live)
			k.noStrayContainers()
			t.Logf("orphans stopped by recovery: %s; v2 containers at rest: %v", orphansStopped(k.p.log.String()), k.colourStates(core.Green))
			k.cleanUp()
		})
	}
}

// dockerKill is one trial: a repository, a data dir, the server killed and
// restarted on it, and the engine it runs containers on.
type dockerKill struct {
	t        *testing.T
	bin      string
	api      *client.Client
	e        *env
	opts     examples.HelloOptions
	data     string
	staging  string
	reg      *gatedRegistry
	regPath  string // the registry repository's path (after HOST:PORT/)
	owner    string // the installation's cutover.owner label
	flags    []string
	p        *proc
	dead     *proc
	versions map[string]string // SHA -> version
	v2       []string          // v2's containers and their states when the server was killed
}

func newDockerKill(t *testing.T, bin string, reg *gatedRegistry, api *client.Client) *dockerKill {
	t.Helper()
	dir := t.TempDir()
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	k := &dockerKill{t: t, bin: bin, api: api, reg: reg, data: filepath.Join(dir, "data"), staging: testutil.ListenAddr(t),
		regPath: "kill-" + hex.EncodeToString(suffix), versions: map[string]string{}}
	// Registered before any server starts, so it runs after they are all
	// killed and nothing can start a container again.
	t.Cleanup(func() { k.removeAll(context.Background()) })
	k.flags = []string{"--docker-host", "a=" + docker.LocalAddress(), "--registry", reg.host + "/" + k.regPath}
	k.e = &env{t: t, repo: filepath.Join(dir, "repo")}
	k.opts = examples.HelloOptions{StagingListen: k.staging, ProductionListen: testutil.ListenAddr(t),
		Verify: 300 * time.Millisecond, StandbyFor: time.Hour, InvestigateFor: time.Hour, Docker: true}
	if err := examples.WriteHello(k.e.repo, k.opts); err != nil {
		t.Fatal(err)
	}
	if err := gitx.Init(context.Background(), k.e.repo); err != nil {
		t.Fatal(err)
	}
	k.versions[k.e.version("v1", "")] = "v1"
	return k
}

// deployV1 starts the server, adds the app and deploys v1 to staging.
func (k *dockerKill) deployV1() {
	t := k.t
	k.p = startServer(t, k.bin, k.data, k.flags...)
	// The installation's mark: the id its database holds.
	st, err := sqlite.Open(context.Background(), filepath.Join(k.data, server.DatabaseFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	k.owner, err = st.Installation(context.Background())
	st.Close()
	if err != nil || k.owner == "" {
		t.Fatalf("installation id: %q, %v", k.owner, err)
	}
	if code := k.p.call("POST", "/api/v1/apps", map[string]string{"name": "hello", "repo": k.e.repo}, nil); code != 201 {
		t.Fatalf("add app: %d\n%s", code, k.p.log.String())
	}
	d := k.p.deploy("staging")
	if got := k.waitTerminal(d.ID); got.State != core.StateSucceeded {
		t.Fatalf("v1 deploy ended %s %q\n%s", got.State, got.Reason, k.p.log.String())
	}
	k.servesLive(k.settle())
	sl := k.status().State.Slots[core.Blue]
	if sl == nil || len(sl.Instances) != 1 {
		t.Fatalf("v1's slot = %+v, want one instance", sl)
	}
	ins, err := k.api.ContainerInspect(context.Background(), sl.Instances[0].Data["container"], client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := ins.Container.Config.Labels[docker.LabelOwner]; got != k.owner {
		t.Fatalf("v1's container is owned by %q, want %q (the database's installation)", got, k.owner)
	}
}

func (k *dockerKill) waitTerminal(id int64) core.Deployment {
	k.t.Helper()
	var d core.Deployment
	k.waitFor(fmt.Sprintf("deployment %d to end", id), dockerKillSettle, func() bool {
		d = k.p.deployment(id)
		return d.State.Terminal()
	})
	return d
}

// waitFor is testutil.WaitFor with both servers' logs on a timeout.
func (k *dockerKill) waitFor(what string, limit time.Duration, cond func() bool) {
	k.t.Helper()
	done := false
	defer func() {
		if !done && k.t.Failed() {
			k.logs()
		}
	}()
	testutil.WaitFor(k.t, what, limit, cond)
	done = true
}

func (k *dockerKill) logs() {
	if k.dead != nil {
		k.t.Logf("--- log of the killed server ---\n%s", tail(k.dead.log.String(), 80))
	}
	if k.p != nil && k.p != k.dead {
		k.t.Logf("--- log of the running server ---\n%s", tail(k.p.log.String(), 120))
	}
}

// untilStep waits until deployment id is at step at or later, or ended.
func (k *dockerKill) untilStep(id int64, at core.Step) {
	k.waitFor(fmt.Sprintf("deployment %d to reach %s", id, at), dockerKillSettle, func() bool {
		d := k.p.deployment(id)
		return d.State.Terminal() || stepOrder[d.Step] >= stepOrder[at]
	})
}

// untilContainer waits until a container of colour exists on the engine,
// in any state: the server has asked for it and not yet recorded it.
func (k *dockerKill) untilContainer(colour core.Colour) {
	k.waitFor("a "+string(colour)+" container", dockerKillSettle, func() bool {
		cs := k.containers(true, docker.LabelColour+"="+string(colour))
		return len(cs) > 0
	})
}

// untilPush waits until the registry holds the push of v2's image.
func (k *dockerKill) untilPush() {
	k.waitFor("the push of v2's image", dockerKillSettle, func() bool { return k.reg.held(k.regPath) })
}

// containers lists this installation's containers on the engine (all:
// in any state, else running or restarting), with more label filters.
func (k *dockerKill) containers(all bool, labels ...string) []container.Summary {
	k.t.Helper()
	f := make(client.Filters).Add("label", append([]string{docker.LabelOwner + "=" + k.owner}, labels...)...)
	if !all {
		f = f.Add("status", "running", "restarting")
	}
	res, err := k.api.ContainerList(context.Background(), client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		k.t.Fatalf("list containers: %v", err)
	}
	return res.Items
}

// afterKill reads the dead server's store: the deployment as it was
// recorded, and the containers no slot refers to that are not stopped
// (left for the restarted server's recovery to stop or remove).
func (k *dockerKill) afterKill(id int64) (core.Deployment, []string) {
	t := k.t
	k.dead = k.p
	k.v2 = k.colourStates(core.Green)
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(k.data, server.DatabaseFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	d, err := st.GetDeployment(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	es, err := st.GetEnvState(ctx, "hello", "staging")
	if err != nil {
		t.Fatal(err)
	}
	return d, k.unknown(es)
}

// unknown returns the containers of this installation that are not an
// instance of es's slots and are not stopped: running, restarting, or
// created and never started (a start cut short). Stopped ones are kept
// for their logs until the retention collects them.
func (k *dockerKill) unknown(es core.EnvState) []string {
	known := map[string]bool{}
	for _, sl := range es.Slots {
		for _, in := range sl.Instances {
			known[in.ID] = true
		}
	}
	var out []string
	for _, c := range k.containers(true) {
		name := containerName(c)
		if c.State == container.StateExited || c.State == container.StateDead {
			continue
		}
		if !known[name] {
			out = append(out, fmt.Sprintf("%s (%s)", name, c.State))
		}
	}
	sort.Strings(out)
	return out
}

// colourStates lists the installation's containers of a colour, any state.
func (k *dockerKill) colourStates(colour core.Colour) []string {
	var out []string
	for _, c := range k.containers(true, docker.LabelColour+"="+string(colour)) {
		out = append(out, fmt.Sprintf("%s (%s)", containerName(c), c.State))
	}
	sort.Strings(out)
	return out
}

var orphanLog = regexp.MustCompile(`stopping orphan instances.* count=(\d+)`)

// orphansStopped is how many instances a server's log says its recovery
// stopped as orphans.
func orphansStopped(log string) string {
	if m := orphanLog.FindStringSubmatch(log); m != nil {
		return m[1]
	}
	return "0"
}

func containerName(c container.Summary) string {
	if len(c.Names) == 0 {
		return c.ID
	}
	return strings.TrimPrefix(c.Names[0], "/")
}

func (k *dockerKill) status() deploy.EnvStatus { return k.p.status("staging") }

// settle waits until staging is at rest with exactly one live release,
// and returns it.
func (k *dockerKill) settle() core.Release {
	var st deploy.EnvStatus
	busy := ""
	k.waitFor("staging to settle", dockerKillSettle, func() bool {
		st = k.status()
		busy = ""
		lives := 0
		for _, sl := range st.State.Slots {
			switch sl.State {
			case core.SlotLive:
				lives++
			case core.SlotStarting: // a failed colour kept for investigation is at rest
				busy = fmt.Sprintf("%s is %s", sl.Colour, sl.State)
			}
		}
		switch {
		case len(st.Unfinished) > 0:
			busy = fmt.Sprintf("deployment %d is %s at %s", st.Unfinished[0].ID, st.Unfinished[0].State, st.Unfinished[0].Step)
		case st.Degraded != "":
			busy = "degraded: " + st.Degraded
		case st.Live == nil:
			busy = "nothing is live"
		case lives != 1:
			busy = fmt.Sprintf("%d live slots", lives)
		case st.State.Slots[st.State.Live] == nil || st.State.Slots[st.State.Live].State != core.SlotLive ||
			st.State.Slots[st.State.Live].Release != st.Live.Number:
			busy = fmt.Sprintf("the live colour %s is not live release #%d's slot", st.State.Live, st.Live.Number)
		}
		return busy == ""
	})
	return *st.Live
}

// servesLive checks that the proxy answers GET / with the live release's
// version, on a few new connections.
func (k *dockerKill) servesLive(live core.Release) {
	k.t.Helper()
	want := "hello from " + k.versions[live.SHA]
	for range 5 {
		if code, body := get(k.t, k.staging); code != 200 || body != want {
			k.logs()
			k.t.Fatalf("GET %s = %d %q, want 200 %q (live release #%d)", k.staging, code, body, want, live.Number)
		}
	}
}

// noStrayContainers waits until every container of this installation
// that is not stopped is an instance of a slot (recovery stops strays; a stop
// takes a moment), and checks that every slot's instance runs.
func (k *dockerKill) noStrayContainers() {
	k.t.Helper()
	var strays []string
	var es core.EnvState
	k.waitFor("no stray container", 15*time.Second, func() bool {
		es = k.status().State
		strays = k.unknown(es)
		return len(strays) == 0
	})
	if len(strays) > 0 {
		k.t.Fatalf("stray containers after recovery: %v", strays)
	}
	running := map[string]bool{}
	for _, c := range k.containers(false) {
		running[containerName(c)] = true
	}
	for _, sl := range es.Slots {
		for _, in := range sl.Instances {
			if sl.State == core.SlotLive && !running[in.ID] {
				k.t.Errorf("live instance %s (%s #%d) is not running", in.ID, sl.Colour, sl.Release)
			}
		}
	}
}

// cleanUp kills the server, removes this installation's containers and
// images, and checks that no container of it is left.
func (k *dockerKill) cleanUp() {
	k.t.Helper()
	k.p.kill()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := k.removeAll(ctx); err != nil {
		k.t.Error(err)
	}
	if left := k.containers(true); len(left) > 0 {
		var names []string
		for _, c := range left {
			names = append(names, fmt.Sprintf("%s (%s)", containerName(c), c.State))
		}
		k.t.Errorf("containers of the installation left after the clean-up: %v", names)
	}
}

// removeAll removes every container (forced) and image of this
// installation on the engine.
func (k *dockerKill) removeAll(ctx context.Context) error {
	if k.owner == "" {
		return nil // no server started: nothing of this installation exists
	}
	f := make(client.Filters).Add("label", docker.LabelOwner+"="+k.owner)
	cs, err := k.api.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range cs.Items {
		if _, err := k.api.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true}); err != nil && !strings.Contains(err.Error(), "No such container") {
			errs = append(errs, err)
		}
	}
	ims, err := k.api.ImageList(ctx, client.ImageListOptions{Filters: f})
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, im := range ims.Items {
		if _, err := k.api.ImageRemove(ctx, im.ID, client.ImageRemoveOptions{Force: true, PruneChildren: true}); err != nil && !strings.Contains(err.Error(), "No such image") {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// gatedRegistry is an in-memory OCI registry on 127.0.0.1 (image.Serve's,
// with a gate): a repository armed holds the first blob upload pushed to
// it until the pusher goes away, so a test can kill the server mid-push.
type gatedRegistry struct {
	host string
	mu   sync.Mutex
	gate map[string]*pushGate // by repository path
}

type pushGate struct {
	once sync.Once
	hit  chan struct{}
}

func startGatedRegistry(t *testing.T) *gatedRegistry {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &gatedRegistry{host: ln.Addr().String(), gate: map[string]*pushGate{}}
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if req.Method == http.MethodPost && strings.Contains(req.URL.Path, "/blobs/uploads/") {
				if g := r.armed(req.URL.Path); g != nil {
					g.once.Do(func() { close(g.hit) })
					<-req.Context().Done() // held until the pusher is killed
					return
				}
			}
			inner.ServeHTTP(w, req)
		}),
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return r
}

func (r *gatedRegistry) arm(path string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gate[path] = &pushGate{hit: make(chan struct{})}
}

func (r *gatedRegistry) disarm(path string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.gate, path)
}

func (r *gatedRegistry) armed(urlPath string) *pushGate {
	r.mu.Lock()
	defer r.mu.Unlock()
	for path, g := range r.gate {
		if strings.HasPrefix(urlPath, "/v2/"+path+"/") {
			return g
		}
	}
	return nil
}

// held reports whether the repository at path has an upload held.
func (r *gatedRegistry) held(path string) bool {
	r.mu.Lock()
	g := r.gate[path]
	r.mu.Unlock()
	if g == nil {
		return false
	}
	select {
	case <-g.hit:
		return true
	default:
		return false
	}
}
