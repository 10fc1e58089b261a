package demo

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/internal/driver/docker"
	"github.com/cutover/cutover/internal/testutil"
)

// TestDemo runs `cutover demo` end to end: it must finish with no failed
// request across its deploys, automatic switch-back and rollbacks.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole demo")
	}
	var out strings.Builder
	res, err := Run(context.Background(), Options{Out: &out, Workers: 4,
		StagingListen: testutil.ListenAddr(t), ProductionListen: testutil.ListenAddr(t)})
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	if res.Failed != 0 || res.Requests == 0 {
		t.Fatalf("load: %d requests, %d failed\n%s", res.Requests, res.Failed, out.String())
	}
	for _, want := range []string{"rolled_back", "rollback", "production refuses v3", "0 failed requests",
		"requested by auto-deploy", ">> notification deploy.rolled_back", ">> notification rollback", ">> notification override"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if len(res.Versions) < 2 {
		t.Errorf("load saw versions %v, want answers from several releases", res.Versions)
	}
}

// TestDemoDocker runs `cutover demo --runtime docker` end to end on the
// local engine: the same story with no failed request, production on
// staging's digest, and nothing of the demo left on the engine.
func TestDemoDocker(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole demo on Docker")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err := docker.Available(ctx)
	cancel()
	if err != nil {
		t.Skipf("docker: no engine reachable at %s: %v", docker.LocalAddress(), err)
	}
	var out strings.Builder
	res, err := Run(context.Background(), Options{Out: &out, Workers: 4, Runtime: RuntimeDocker,
		StagingListen: testutil.ListenAddr(t), ProductionListen: testutil.ListenAddr(t)})
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	if res.Failed != 0 || res.Requests == 0 {
		t.Fatalf("load: %d requests, %d failed\n%s", res.Requests, res.Failed, out.String())
	}
	if !strings.Contains(res.Image, "/hello@sha256:") || res.Removed == 0 {
		t.Errorf("image %q, %d removed from the engine", res.Image, res.Removed)
	}
	for _, want := range []string{"rolled_back", "production refuses v3", "0 failed requests", "v1's image: " + res.Image,
		"production got the same digest as staging", "on host-a", "on host-b", ">> notification rollback", "nothing of it is left"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
}

// TestDemoDockerUnreachable: with no engine the demo fails at once, saying
// where it looked and what to do.
func TestDemoDockerUnreachable(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
	start := time.Now()
	_, err := Run(context.Background(), Options{Runtime: RuntimeDocker})
	if err == nil {
		t.Fatal("the demo ran with no Docker engine")
	}
	for _, want := range []string{"no Docker engine reachable at unix:///nonexistent/docker.sock", "start Docker or run the demo without --runtime"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("took %s to refuse", d)
	}
}

// TestDemoRuntimeRefused: an unknown runtime is refused before anything
// starts, naming the accepted ones.
func TestDemoRuntimeRefused(t *testing.T) {
	_, err := Run(context.Background(), Options{Runtime: "kubernetes"})
	if err == nil || !strings.Contains(err.Error(), `"kubernetes"`) || !strings.Contains(err.Error(), "process or docker") {
		t.Fatalf("err = %v", err)
	}
}
