package server_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/cutover/cutover/examples"
	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/deploy"
	"github.com/cutover/cutover/internal/driver/docker"
	"github.com/cutover/cutover/internal/image"
	"github.com/cutover/cutover/internal/server"
)

// newDockerEnv is an env whose hello app runs on Docker: the local engine
// under two host names (a and b; production runs on both), images pushed
// to an in-process registry under a repository of the test's own. It
// skips when no engine answers.
func newDockerEnv(t *testing.T, mutate ...func(*examples.HelloOptions)) (*env, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := docker.Available(ctx); err != nil {
		t.Skipf("docker: no engine reachable at %s: %v", docker.LocalAddress(), err)
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
		Hosts:    []docker.Host{{Name: "a", Address: docker.LocalAddress()}, {Name: "b", Address: docker.LocalAddress()}},
		Registry: image.Registry{Repo: repo},
	}}
	mutate = append([]func(*examples.HelloOptions){func(o *examples.HelloOptions) {
		o.Docker, o.DockerHosts, o.ProductionInstances = true, []string{"a", "b"}, 1
	}}, mutate...)
	e = newEnvWith(t, e, mutate...)
	// Before the env closes: leave no container or image on the engine.
	t.Cleanup(func() {
		if e.srv == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = e.srv.StopAll(ctx)
		if _, err := e.srv.RemoveRuntimeLeftovers(ctx, "hello"); err != nil {
			t.Errorf("containers or images left on the engine: %v", err)
		}
	})
	return e, repo
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

// TestDockerRetention: with docker.keep 5, eight releases leave the images
// of the newest rollback targets; a rollback four steps back works even
// after its image was removed from the host (pulled back from the
// registry); a rollback to a collected release, or to one whose image is
// gone everywhere, is refused before traffic moves.
func TestDockerRetention(t *testing.T) {
	t.Parallel()
	e, repo := newDockerEnv(t, func(o *examples.HelloOptions) { o.DockerKeep = 5 })
	ctx := context.Background()
	for i := 1; i <= 8; i++ {
		if i > 1 {
			e.version("v"+strconv.Itoa(i), "")
		}
		e.deploy("staging", core.StateSucceeded)
	}
	e.serves(e.staging, "v8")
	rels, err := e.svc.Releases(ctx, "hello", 20)
	if err != nil || len(rels) != 8 {
		t.Fatalf("releases = %d, %v", len(rels), err)
	}
	byNumber := map[int]core.Release{}
	for _, r := range rels {
		byNumber[r.Number] = r
	}

	removed, err := e.svc.CollectArtifacts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	gone := map[string]bool{}
	for _, a := range removed {
		gone[a.SHA] = true
	}
	if len(removed) != 2 || !gone[byNumber[1].SHA] || !gone[byNumber[2].SHA] {
		t.Fatalf("collected %d artifacts (%v); want those of #1 and #2 only", len(removed), gone)
	}
	images, err := image.New(ctx, image.Config{Registry: image.Registry{Repo: repo}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = images.Close() })
	ref := func(n int) string { return repo + "/hello@" + byNumber[n].Digest }
	if where, err := images.Exists(ctx, ref(1)); err != nil || where != "registry" {
		t.Errorf("#1's image: %q, %v; want it gone from the host (still in the registry)", where, err)
	}
	if where, err := images.Exists(ctx, ref(4)); err != nil || where != "local" {
		t.Errorf("#4's image: %q, %v; want it kept on the host", where, err)
	}

	// A collected release is refused before anything is recorded.
	if _, err := e.svc.Rollback(ctx, deploy.RollbackRequest{App: "hello", Env: "staging", To: 1}); err == nil || !strings.Contains(err.Error(), "collected") {
		t.Errorf("rollback to collected #1: %v; want a refusal saying it was collected", err)
	}
	// A kept release whose image is gone from the host and the registry too.
	removeLocal(t, images, ref(3))
	if err := images.Delete(ctx, ref(3)); err != nil {
		t.Fatal(err)
	}
	before, _ := e.svc.History(ctx, "hello", "staging", 0, 100)
	if _, err := e.svc.Rollback(ctx, deploy.RollbackRequest{App: "hello", Env: "staging", To: 3}); err == nil || !strings.Contains(err.Error(), "is gone") {
		t.Errorf("rollback to #3 whose image is gone everywhere: %v; want a refusal saying the image is gone", err)
	}
	if after, _ := e.svc.History(ctx, "hello", "staging", 0, 100); len(after) != len(before) {
		t.Errorf("a refused rollback was recorded: %d deployments, were %d", len(after), len(before))
	}
	e.serves(e.staging, "v8")

	// Four steps back, to #4, whose image is only in the registry now.
	removeLocal(t, images, ref(4))
	rb, err := e.svc.Rollback(ctx, deploy.RollbackRequest{App: "hello", Env: "staging", Steps: 4})
	if err != nil {
		t.Fatal(err)
	}
	if got := e.wait(rb, core.StateSucceeded); got.Release != 4 {
		t.Errorf("rolled back to #%d, want #4", got.Release)
	}
	e.serves(e.staging, "v4")

	// Deploying #1's commit again, as the refusal advised: a commit is
	// built once, so its image in the registry is taken again, the same
	// digest (a new build would differ and its SHA tag refuses that).
	again, err := e.svc.Deploy(ctx, deploy.DeployRequest{App: "hello", Env: "staging", Ref: byNumber[1].SHA})
	if err != nil {
		t.Fatal(err)
	}
	again = e.wait(again, core.StateSucceeded)
	e.serves(e.staging, "v1")
	if rel, err := e.svc.Releases(ctx, "hello", 1); err != nil || len(rel) != 1 || rel[0].Number != again.Release || rel[0].Digest != byNumber[1].Digest {
		t.Errorf("redeploy of #1's commit: %+v, %v; want #1's digest %s", rel, err, byNumber[1].Digest)
	}
	e.noStrayContainers()
}

// removeLocal removes an image from the engine as someone pruning it by
// hand would: with the stopped containers that ran it.
func removeLocal(t *testing.T, images *image.Images, ref string) {
	t.Helper()
	ctx := context.Background()
	list, err := images.Engine().ContainerList(ctx, client.ContainerListOptions{All: true,
		Filters: make(client.Filters).Add("label", docker.LabelArtifact+"="+ref)})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range list.Items {
		if _, err := images.Engine().ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true}); err != nil {
			t.Fatal(err)
		}
	}
	if err := images.Remove(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if where, err := images.Exists(ctx, ref); err != nil || where != "registry" {
		t.Fatalf("%s after removing it from the engine: %q, %v", ref, where, err)
	}
}

// TestDockerEngineLaterThanServer: a server started while its Docker
// engine does not answer refuses docker apps with the reason, and runs
// them once the engine answers, without a restart. The engine "comes up"
// as a unix socket forwarding to the real one.
func TestDockerEngineLaterThanServer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := docker.Available(cctx); err != nil {
		t.Skipf("docker: no engine reachable at %s: %v", docker.LocalAddress(), err)
	}
	real := strings.TrimPrefix(docker.LocalAddress(), "unix://")
	if real == docker.LocalAddress() {
		t.Skipf("docker: the engine is not on a unix socket (%s)", docker.LocalAddress())
	}
	sock := filepath.Join(t.TempDir(), "docker.sock")
	e := newEnvWith(t, &env{docker: server.Docker{Hosts: []docker.Host{{Name: "late", Address: "unix://" + sock}}, Retry: 50 * time.Millisecond}},
		func(o *examples.HelloOptions) { o.Docker, o.DockerHosts = true, []string{"late", "nowhere"} })
	// A host the server does not define is refused in the request, before
	// anything is built or recorded (production lists "nowhere").
	if _, err := e.svc.Deploy(ctx, deploy.DeployRequest{App: "hello", Env: "production"}); !errors.Is(err, core.ErrInvalid) ||
		!strings.Contains(err.Error(), `docker host "nowhere" is not one of this server's (late;`) {
		t.Errorf("deploy to an unknown host: %v; want ErrInvalid naming it and the known ones", err)
	}
	if hist, _ := e.svc.History(ctx, "hello", "", 0, 10); len(hist) != 0 {
		t.Errorf("the refused deploy was recorded: %+v", hist)
	}

	d := e.deploy("staging", core.StateFailed)
	if !strings.Contains(d.Reason, "runtime docker is not available on this server") || !strings.Contains(d.Reason, sock) {
		t.Fatalf("deploy without an engine: %q; want the runtime's unavailability naming %s", d.Reason, sock)
	}

	// The engine comes up: a socket that forwards to the real one.
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	// Before the socket closes (cleanups run last first): leave nothing on
	// the engine.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = e.srv.StopAll(ctx)
		if _, err := e.srv.RemoveRuntimeLeftovers(ctx, "hello"); err != nil {
			t.Errorf("containers or images left on the engine: %v", err)
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				up, err := net.Dial("unix", real)
				if err != nil {
					return
				}
				defer up.Close()
				go func() { _, _ = io.Copy(up, c) }()
				_, _ = io.Copy(c, up)
			}()
		}
	}()
	e.deploy("staging", core.StateSucceeded)
	e.serves(e.staging, "v1")
}
