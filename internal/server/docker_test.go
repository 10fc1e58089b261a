package server_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/examples"
	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/deploy"
	"github.com/cutover/cutover/internal/driver/docker"
	"github.com/cutover/cutover/internal/image"
	"github.com/cutover/cutover/internal/server"
)

// dockerAddress is the local engine's address, as the tests name it twice.
func dockerAddress() string {
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		return h
	}
	return "unix:///var/run/docker.sock"
}

// newDockerEnv is an env whose hello app runs on Docker: the local engine
// under two host names (a and b; production runs on both), images pushed
// to an in-process registry under a repository of the test's own. It
// skips when no engine answers.
func newDockerEnv(t *testing.T, mutate ...func(*examples.HelloOptions)) (*env, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := docker.Available(ctx); err != nil {
		t.Skipf("docker: no engine reachable at %s: %v", dockerAddress(), err)
	}
	reg, stop, err := image.Serve(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	repo := reg + "/e2e-" + hex.EncodeToString(suffix)
	e := &env{docker: server.Docker{
		Hosts:    []docker.Host{{Name: "a", Address: dockerAddress()}, {Name: "b", Address: dockerAddress()}},
		Registry: image.Registry{Repo: repo},
	}}
	mutate = append([]func(*examples.HelloOptions){func(o *examples.HelloOptions) {
		o.Docker, o.DockerHosts, o.ProductionInstances = true, []string{"a", "b"}, 1
	}}, mutate...)
	return newEnvWith(t, e, mutate...), repo
}

// liveInstances returns the live colour's instances of an environment.
func (e *env) liveInstances(envName string) []core.Instance {
	e.t.Helper()
	st := e.state(envName)
	if sl := st.Slots[st.Live]; sl != nil {
		return sl.Instances
	}
	return nil
}

// TestDockerReleasePath: build an image per commit, push it, deploy it to
// staging, promote the same digest to production on two hosts, switch a
// broken release back automatically and roll production back two
// releases, all under load through the proxies with no failed request.
func TestDockerReleasePath(t *testing.T) {
	t.Parallel()
	// verify long enough for the broken release's errors (from 1 s after
	// its first request) to be seen.
	e, repo := newDockerEnv(t, func(o *examples.HelloOptions) { o.Verify = 2 * time.Second })
	ctx := context.Background()

	e.deploy("staging", core.StateSucceeded)
	e.serves(e.staging, "v1")
	e.deploy("production", core.StateSucceeded)
	e.serves(e.prod, "v1")
	rels, err := e.svc.Releases(ctx, "hello", 10)
	if err != nil || len(rels) != 2 {
		t.Fatalf("releases = %+v, %v", rels, err)
	}
	if rels[0].SHA != rels[1].SHA || rels[0].Digest != rels[1].Digest || !strings.HasPrefix(rels[0].Digest, "sha256:") {
		t.Errorf("production did not get staging's image: %+v", rels)
	}
	art, err := e.svc.Build(ctx, "hello", rels[0].SHA, nil) // built already: the stored artifact
	if err != nil || art.Ref != repo+"/hello@"+rels[0].Digest {
		t.Errorf("artifact = %+v, %v; want it run by digest from %s", art, err, repo)
	}
	// Production runs on both hosts, each instance reached on loopback.
	hosts := map[string]bool{}
	for _, in := range e.liveInstances("production") {
		hosts[in.Data["host"]] = true
		if !strings.HasPrefix(in.Addr, "127.0.0.1:") {
			t.Errorf("instance %s at %q, want a port published on 127.0.0.1", in.ID, in.Addr)
		}
		e.serves(in.Addr, "v1")
	}
	if !hosts["a"] || !hosts["b"] || len(hosts) != 2 {
		t.Errorf("production instances on hosts %v, want a and b", hosts)
	}

	loads := []*load{startLoad(t, e.staging), startLoad(t, e.prod)}
	for _, v := range []string{"v2", "v3"} {
		e.version(v, "")
		e.deploy("staging", core.StateSucceeded)
		e.deploy("production", core.StateSucceeded)
		e.serves(e.prod, v)
	}

	// A broken image: verify sees its errors and switches back on its own.
	// The 500s it answers until then are its own, not dropped requests:
	// staging's load is counted apart.
	n, failed, samples := loads[0].halt()
	if failed > 0 || n == 0 {
		t.Errorf("staging: %d of %d requests failed before the broken release: %v", failed, n, samples)
	}
	broken := startLoad(t, e.staging)
	e.version("v4", "after")
	rolled := e.deploy("staging", core.StateRolledBack)
	if rolled.SwitchedAt == nil {
		t.Error("the broken release never got traffic")
	}
	e.serves(e.staging, "v3")
	n, failed, _ = broken.halt()
	t.Logf("staging under the broken release: %d of %d requests answered 500 by it before the switch back", failed, n)
	loads[0] = startLoad(t, e.staging)

	// Production back two releases, to v1: a cold start of v1's image.
	rb, err := e.svc.Rollback(ctx, deploy.RollbackRequest{App: "hello", Env: "production", Steps: 2})
	if err != nil {
		t.Fatal(err)
	}
	e.wait(rb, core.StateSucceeded)
	e.serves(e.prod, "v1")

	for i, l := range loads {
		n, failed, samples := l.halt()
		t.Logf("load %d: %d requests, %d failed", i, n, failed)
		if failed > 0 || n == 0 {
			t.Errorf("load %d: %d of %d requests failed: %v", i, failed, n, samples)
		}
	}
	e.noStrayContainers()
}

// noStrayContainers checks that every running container of this server
// belongs to a slot.
func (e *env) noStrayContainers() {
	e.t.Helper()
	known := map[string]bool{}
	st, err := e.svc.Status(context.Background(), "hello")
	if err != nil {
		e.t.Fatal(err)
	}
	for _, s := range st {
		for _, sl := range s.State.Slots {
			for _, in := range sl.Instances {
				known[in.ID] = true
			}
		}
	}
	running, err := e.srv.Instances(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	for _, in := range running {
		if !known[in.ID] {
			e.t.Errorf("stray container %s (%s/%s %s #%d)", in.ID, in.App, in.Env, in.Colour, in.Release)
		}
	}
}
