package docker

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/deploy"
	"github.com/cutover/cutover/internal/driver/drivertest"
	"github.com/cutover/cutover/internal/testutil"
)

const greeting = "hi from a container"

// testHosts returns host names unique to this run and test, all on the
// default engine, and removes their containers when the test ends.
func testHosts(t *testing.T, names ...string) []Host {
	t.Helper()
	var hosts []Host
	var labels []string
	for _, n := range names {
		h := Host{Name: runID + "-" + n, Address: LocalAddress()}
		hosts = append(hosts, h)
		labels = append(labels, h.Name)
	}
	t.Cleanup(func() { removeHostContainers(labels...) })
	return hosts
}

func newDriver(t *testing.T, hosts []Host) *Driver {
	t.Helper()
	d, err := New(context.Background(), Config{Hosts: hosts})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

func helloSpec(app string, count int) core.GroupSpec {
	return core.GroupSpec{
		App: app, Env: "test", Colour: core.Colour("blue"), Release: 1, Count: count,
		Artifact: helloID, Environ: map[string]string{"GREETING": greeting},
	}
}

func TestDriver_Conformance(t *testing.T) {
	requireEngine(t)
	t.Parallel()
	failing := map[string]string{"MIGRATIONS_LOG": "/no/such/dir/migrations.log"} // log.Fatal: exit 1
	drivertest.Run(t, drivertest.Suite{
		New:  func(t *testing.T) deploy.Driver { return newDriver(t, testHosts(t, "conf")) },
		Spec: func(count int) core.GroupSpec { return helloSpec("conf", count) },
		Want: greeting,
		Bad: core.GroupSpec{App: "conf", Env: "test", Colour: "green", Release: 2, Count: 1,
			Artifact: "sha256:" + strings.Repeat("0", 64)},
		Exits: core.GroupSpec{App: "conf", Env: "test", Colour: "green", Release: 3, Count: 1, Artifact: helloID,
			Command: []string{"/hello", "migrate"}, Environ: failing, Runtime: core.RuntimeOptions{Restart: "no"}},
		Task:        core.TaskSpec{App: "conf", Env: "test", Release: 1, Name: "migrate", Artifact: helloID, Command: []string{"/hello", "migrate"}, Timeout: 20 * time.Second},
		FailingTask: core.TaskSpec{App: "conf", Env: "test", Release: 1, Name: "migrate", Artifact: helloID, Command: []string{"/hello", "migrate"}, Environ: failing},
		TaskOutput:  "migrate: nothing to do",
	})
}

func TestStart_MissingLocalImageIsNamed(t *testing.T) {
	requireEngine(t)
	t.Parallel()
	hosts := testHosts(t, "missing")
	d := newDriver(t, hosts)
	spec := helloSpec("missing", 1)
	spec.Artifact = "sha256:" + strings.Repeat("1", 64)
	_, err := d.Start(context.Background(), spec)
	if err == nil || !strings.Contains(err.Error(), "is not on docker host "+hosts[0].Name+" and it has no registry reference") {
		t.Errorf("err = %v", err)
	}
}

func TestStart_RefusesUnknownHostAndRestartPolicy(t *testing.T) {
	requireEngine(t)
	t.Parallel()
	hosts := testHosts(t, "known")
	d := newDriver(t, hosts)
	spec := helloSpec("refuse", 1)
	spec.Runtime.Hosts = []string{"nowhere"}
	if _, err := d.Start(context.Background(), spec); err == nil || !strings.Contains(err.Error(), `"nowhere"`) || !strings.Contains(err.Error(), hosts[0].Name) {
		t.Errorf("unknown host: err = %v, want one naming it and the known hosts", err)
	}
	spec = helloSpec("refuse", 1)
	spec.Runtime.Restart = "sometimes"
	if _, err := d.Start(context.Background(), spec); err == nil || !strings.Contains(err.Error(), "unless-stopped") {
		t.Errorf("bad restart policy: err = %v, want one listing the accepted ones", err)
	}
}

func TestNew_UnreachableHostIsNamed(t *testing.T) {
	t.Parallel()
	_, err := New(context.Background(), Config{Hosts: []Host{{Name: "gone", Address: "unix:///nonexistent/docker.sock"}}})
	if err == nil || !strings.Contains(err.Error(), "gone") || !strings.Contains(err.Error(), "unix:///nonexistent/docker.sock") {
		t.Errorf("err = %v, want one naming the host and its address", err)
	}
}

func TestStart_EveryListedHost(t *testing.T) {
	requireEngine(t)
	t.Parallel()
	hosts := testHosts(t, "two-a", "two-b")
	d := newDriver(t, hosts)
	spec := helloSpec("two", 2)
	spec.Runtime.Hosts = []string{hosts[0].Name, hosts[1].Name}
	ctx := context.Background()
	insts, err := d.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if len(insts) != 4 {
		t.Fatalf("%d instances, want 2 on each of 2 hosts", len(insts))
	}
	perHost := map[string]int{}
	ids := map[string]bool{}
	for _, in := range insts {
		perHost[in.Data["host"]]++
		ids[in.ID] = true
		if !strings.HasPrefix(in.Addr, "127.0.0.1:") {
			t.Errorf("%s published on %q, want the loopback", in.ID, in.Addr)
		}
		waitAnswer(t, d, in)
	}
	if perHost[hosts[0].Name] != 2 || perHost[hosts[1].Name] != 2 || len(ids) != 4 {
		t.Errorf("per host = %v, distinct ids = %d", perHost, len(ids))
	}
	listed, err := d.List(ctx)
	if err != nil || len(listed) != 4 {
		t.Errorf("list = %d instances, %v; want 4", len(listed), err)
	}
}

func TestStart_OneHostFailingLeavesNothingAnywhere(t *testing.T) {
	requireEngine(t)
	t.Parallel()
	hosts := testHosts(t, "aon-ok", "aon-bad")
	// The engine cannot publish on an address the machine does not have
	// (TEST-NET-1), so every start on that host fails after the other
	// host's containers were created.
	hosts[1].PublishIP = "192.0.2.1"
	d := newDriver(t, hosts)
	spec := helloSpec("aon", 2)
	spec.Runtime.Hosts = []string{hosts[0].Name, hosts[1].Name}
	_, err := d.Start(context.Background(), spec)
	if err == nil || !strings.Contains(err.Error(), hosts[1].Name) {
		t.Fatalf("err = %v, want a failure naming host %s", err, hosts[1].Name)
	}
	t.Log(err)
	for _, h := range hosts {
		res, err := api.ContainerList(context.Background(), client.ContainerListOptions{All: true,
			Filters: make(client.Filters).Add("label", LabelHost+"="+h.Name)})
		if err != nil || len(res.Items) != 0 {
			t.Errorf("host %s keeps %d containers after a failed start (%v)", h.Name, len(res.Items), err)
		}
	}
}

func TestList_FreshDriverFindsContainers(t *testing.T) {
	requireEngine(t)
	t.Parallel()
	hosts := testHosts(t, "restart")
	ctx := context.Background()
	first := newDriver(t, hosts)
	insts, err := first.Start(ctx, helloSpec("restart", 2))
	if err != nil {
		t.Fatal(err)
	}
	first.Close()
	second := newDriver(t, hosts) // a restarted server
	listed, err := second.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range insts {
		i := slices.IndexFunc(listed, func(l core.Instance) bool { return l.ID == in.ID })
		if i < 0 {
			t.Fatalf("%s not listed by a fresh driver: %+v", in.ID, listed)
		}
		got := listed[i]
		if got.Addr != in.Addr || got.App != in.App || got.Env != in.Env || got.Colour != in.Colour || got.Release != in.Release || got.Data["container"] != in.Data["container"] {
			t.Errorf("rebuilt %+v, started %+v", got, in)
		}
	}
	if err := second.Stop(ctx, listed, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if after, _ := second.List(ctx); len(after) != 0 {
		t.Errorf("listed after stop: %+v", after)
	}
}

// TestList_NeverStartedContainerIsRemoved: a server killed between a
// container's create and its start leaves a container no slot records. A
// restarted server's driver lists it, and stopping it (the reconcile's
// orphan stop) removes it, so neither it nor a start the engine was
// still carrying out leaves a container behind.
func TestList_NeverStartedContainerIsRemoved(t *testing.T) {
	requireEngine(t)
	t.Parallel()
	hosts := testHosts(t, "cutshort")
	ctx := context.Background()
	first := newDriver(t, hosts)
	e := first.engines[0]
	spec := helloSpec("cutshort", 1)
	name := "cutover-cutshort-test-blue-r1-0-" + randomHex(3)
	// What Start creates, cut short before the start.
	created, err := e.api.ContainerCreate(ctx, client.ContainerCreateOptions{Name: name, Config: &container.Config{
		Image: spec.Artifact,
		Labels: map[string]string{LabelManaged: "true", LabelApp: spec.App, LabelEnv: spec.Env, LabelColour: string(spec.Colour),
			LabelRelease: "1", LabelInstance: "0", LabelArtifact: spec.Artifact, LabelHost: e.Name, LabelOwner: first.cfg.Owner},
	}})
	if err != nil {
		t.Fatal(err)
	}
	first.Close()

	second := newDriver(t, hosts) // a restarted server
	listed, err := second.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(listed, func(l core.Instance) bool { return l.ID == name })
	if i < 0 {
		t.Fatalf("a container created but never started is not listed: %+v", listed)
	}
	if in := listed[i]; in.Data["container"] != created.ID || in.Data[dataCreated] != "true" || in.App != spec.App || in.Colour != spec.Colour {
		t.Errorf("listed %+v, want container %s marked created", in, created.ID)
	}
	if err := second.Stop(ctx, listed[i:i+1], time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := e.api.ContainerInspect(ctx, created.ID, client.ContainerInspectOptions{}); !errNotFound(err) {
		t.Errorf("the never-started container is still on the engine after Stop (inspect: %v)", err)
	}
	if after, _ := second.List(ctx); len(after) != 0 {
		t.Errorf("listed after stop: %+v", after)
	}
	if err := second.Stop(ctx, listed[i:i+1], time.Second); err != nil {
		t.Errorf("stopping it twice: %v", err)
	}
}

func TestStart_ContainerConfiguration(t *testing.T) {
	requireEngine(t)
	t.Parallel()
	hosts := testHosts(t, "config")
	d := newDriver(t, hosts)
	spec := helloSpec("config", 1)
	spec.Secrets = map[string]string{"DB_PASSWORD": "s3cret-value"}
	spec.Runtime = core.RuntimeOptions{Port: 9090, Memory: 64 << 20, CPUs: 0.5, Restart: "on-failure"}
	ctx := context.Background()
	insts, err := d.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	in := insts[0]
	res := waitAnswer(t, d, in)
	if !strings.Contains(string(res.Body), greeting) {
		t.Errorf("GET / = %q, want the GREETING from Environ", res.Body)
	}
	ins, err := api.ContainerInspect(ctx, in.Data["container"], client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := ins.Container
	for _, kv := range []string{"DB_PASSWORD=s3cret-value", "GREETING=" + greeting, "PORT=9090", "HOST=0.0.0.0"} {
		if !slices.Contains(c.Config.Env, kv) {
			t.Errorf("env lacks %s: %q", kv, c.Config.Env)
		}
	}
	want := map[string]string{
		LabelManaged: "true", LabelApp: "config", LabelEnv: "test", LabelColour: "blue", LabelRelease: "1",
		LabelInstance: "0", LabelArtifact: helloID, LabelHost: hosts[0].Name,
	}
	for k, v := range want {
		if c.Config.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, c.Config.Labels[k], v)
		}
	}
	for k, v := range c.Config.Labels {
		if strings.Contains(k+v, "s3cret") {
			t.Errorf("a secret is in label %s=%s", k, v)
		}
	}
	hc := c.HostConfig
	if hc.Memory != 64<<20 || hc.NanoCPUs != 500_000_000 || hc.RestartPolicy.Name != container.RestartPolicyOnFailure {
		t.Errorf("memory %d, nano CPUs %d, restart %q", hc.Memory, hc.NanoCPUs, hc.RestartPolicy.Name)
	}
	if lc := hc.LogConfig; lc.Type != "json-file" || lc.Config["max-size"] != "10m" || lc.Config["max-file"] != "3" {
		t.Errorf("log config = %+v, want json-file rotated at 10m, 3 files", lc)
	}
	if !strings.HasPrefix(c.Name, "/cutover-config-test-blue-r1-0-") || in.ID != strings.TrimPrefix(c.Name, "/") {
		t.Errorf("name %q, instance %q", c.Name, in.ID)
	}
	if in.Data["runtime"] != "docker" || in.Data["host"] != hosts[0].Name || in.Data["container"] != c.ID {
		t.Errorf("data = %v", in.Data)
	}
	// Stopped, it stays stopped: no restart policy brings it back when
	// the daemon restarts.
	if err := d.Stop(ctx, insts, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	after, err := api.ContainerInspect(ctx, in.Data["container"], client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p := after.Container.HostConfig.RestartPolicy.Name; p != container.RestartPolicyDisabled {
		t.Errorf("restart policy after stop = %q, want %q", p, container.RestartPolicyDisabled)
	}
}

func TestExited_RestartingIsReported(t *testing.T) {
	requireEngine(t)
	t.Parallel()
	d := newDriver(t, testHosts(t, "crash"))
	spec := helloSpec("crash", 1)
	spec.Command = []string{"/hello", "migrate"}
	spec.Environ = map[string]string{"MIGRATIONS_LOG": "/no/such/dir/log"}
	spec.Runtime.Restart = "always"
	insts, err := d.Start(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	var status string
	testutil.WaitFor(t, "the crashing container to be reported", 15*time.Second, func() bool {
		s, exited := d.Exited(context.Background(), insts[0])
		status = s
		return exited && strings.Contains(s, "restarting")
	})
	if !strings.Contains(status, "exited with status 1") {
		t.Errorf("status = %q", status)
	}
}

func TestRunTask_CancelledWhileRunningIsKilled(t *testing.T) {
	requireEngine(t)
	t.Parallel()
	hosts := testHosts(t, "task")
	d := newDriver(t, hosts)
	// Without the migrate argument hello serves forever: only the timeout ends it.
	spec := core.TaskSpec{App: "task", Env: "test", Release: 1, Name: "serve", Artifact: helloID, Timeout: 3 * time.Second}
	var out strings.Builder
	err := d.RunTask(context.Background(), spec, &out)
	if err == nil || !strings.Contains(err.Error(), "deadline") {
		t.Fatalf("err = %v, want the deadline", err)
	}
	// What it printed before the deadline is kept: what a hung migration
	// was doing is the first question.
	if !strings.Contains(out.String(), "listening") {
		t.Errorf("output of the timed-out task = %q, want what it printed (listening)", out.String())
	}
	res, err := api.ContainerList(context.Background(), client.ContainerListOptions{All: true,
		Filters: make(client.Filters).Add("label", LabelHost+"="+hosts[0].Name)})
	if err != nil || len(res.Items) != 0 {
		t.Errorf("%d task containers left (%v)", len(res.Items), err)
	}
}

func TestSSHArgv(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		addr, want, err string
	}{
		{"ssh://deploy@build-1", "ssh -o ConnectTimeout=30 -o BatchMode=yes -T -l deploy -- build-1 docker system dial-stdio", ""},
		{"ssh://deploy@build-1:2222", "ssh -o ConnectTimeout=30 -o BatchMode=yes -T -l deploy -p 2222 -- build-1 docker system dial-stdio", ""},
		{"ssh://build-1", "ssh -o ConnectTimeout=30 -o BatchMode=yes -T -- build-1 docker system dial-stdio", ""},
		{"ssh://u:pw@build-1", "", "passwords"},
		{"ssh://build-1/path", "", "no path"},
	} {
		u, err := url.Parse(tc.addr)
		if err != nil {
			t.Fatal(err)
		}
		argv, err := sshArgv(u)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err = %v, want %q", tc.addr, err, tc.err)
			}
			continue
		}
		if err != nil || strings.Join(argv, " ") != tc.want {
			t.Errorf("%s: argv = %q, %v; want %q", tc.addr, argv, err, tc.want)
		}
	}
}

// waitAnswer polls an instance until GET / answers 200.
func waitAnswer(t *testing.T, d *Driver, in core.Instance) core.ProbeResult {
	t.Helper()
	var res core.ProbeResult
	testutil.WaitFor(t, in.ID+" to answer", 15*time.Second, func() bool {
		r, err := d.Probe(context.Background(), in, core.ProbeRequest{Method: http.MethodGet, Path: "/", Timeout: time.Second})
		res = r
		return err == nil && r.Status == http.StatusOK
	})
	return res
}

func TestPrune_CollectsUnkeptAndKeepsKept(t *testing.T) {
	requireEngine(t)
	t.Parallel()
	ctx := context.Background()
	hosts := testHosts(t, "prune")
	d := newDriver(t, hosts)
	app := runID + "-prune"
	var unkept, orphan, keptLabelled string
	for _, img := range []struct {
		id   *string
		name string
	}{{&unkept, "unkept"}, {&orphan, "orphan"}, {&keptLabelled, "kept"}} {
		id, err := buildImage(ctx, "cutover-test/hello:"+runID+"-"+img.name, map[string]string{LabelApp: app, "variant": img.name})
		if err != nil {
			t.Fatal(err)
		}
		*img.id = id
		t.Cleanup(func() { _, _ = api.ImageRemove(ctx, id, client.ImageRemoveOptions{Force: true, PruneChildren: true}) })
	}
	var started []core.Instance
	for i, ref := range []string{helloID, unkept} {
		spec := helloSpec(app, 1)
		spec.Release, spec.Artifact = i+1, ref
		insts, err := d.Start(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		started = append(started, insts...)
	}
	running := helloSpec(app, 1)
	running.Release, running.Artifact = 3, keptLabelled
	live, err := d.Start(ctx, running)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Stop(ctx, started, 5*time.Second); err != nil {
		t.Fatal(err)
	}

	keep := func(ref string) bool { return ref == helloID || ref == keptLabelled }
	removed, err := d.Prune(ctx, app, keep)
	if err != nil {
		t.Fatal(err)
	}
	if removed != 3 {
		t.Errorf("removed %d, want 3 (one container, two images)", removed)
	}
	exists := func(id string) bool {
		_, err := api.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
		return err == nil
	}
	if !exists(started[0].Data["container"]) {
		t.Error("the stopped container of a kept artifact was removed")
	}
	if exists(started[1].Data["container"]) {
		t.Error("the stopped container of an unkept artifact is still there")
	}
	if !exists(live[0].Data["container"]) {
		t.Error("a running container was removed")
	}
	for id, want := range map[string]bool{helloID: true, keptLabelled: true, unkept: false, orphan: false} {
		if has, err := d.HasImage(ctx, id); err != nil || has != want {
			t.Errorf("image %s present = %v (%v), want %v", shortID(id), has, err, want)
		}
	}
	var logs strings.Builder
	if err := d.Logs(ctx, started[1], 0, &logs); err == nil {
		t.Error("logs of a collected container were read")
	}
}
