package server_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/cutover/cutover/examples"
	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/gitx"
	"github.com/cutover/cutover/internal/server"
	"github.com/cutover/cutover/internal/testutil"
)

// TestSeparateProxySurvivesControlPlane runs the proxy as its own process:
// traffic keeps flowing while the control plane is down, and a restarted
// control plane deploys through it again.
func TestSeparateProxySurvivesControlPlane(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and the example app")
	}
	t.Parallel()
	bin := cutoverBin(t)
	dir := t.TempDir()
	listen := testutil.ListenAddr(t)
	sock := startProxy(t, bin, dir, listen)

	e := &env{t: t, repo: filepath.Join(dir, "repo"), data: filepath.Join(dir, "data")}
	if err := examples.WriteHello(e.repo, examples.HelloOptions{StagingListen: listen, ProductionListen: testutil.ListenAddr(t), Verify: 300 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if err := gitx.Init(context.Background(), e.repo); err != nil {
		t.Fatal(err)
	}
	e.commit("v1")
	open := func() {
		srv, err := server.Open(context.Background(), server.Config{DataDir: e.data, Listen: "127.0.0.1:0", ProxyAdmin: sock,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), TickInterval: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		e.srv, e.svc = srv, srv.Deploy
	}
	open()
	t.Cleanup(func() { e.close(true) })
	if _, err := e.svc.AddApp(context.Background(), "hello", e.repo); err != nil {
		t.Fatal(err)
	}
	e.deploy("staging", core.StateSucceeded)
	e.serves(listen, "v1")

	// The control plane goes away (its instances keep running): traffic does not notice.
	e.close(false)
	for range 20 {
		e.serves(listen, "v1")
	}
	// A new control plane adopts the instances and deploys through the same proxy.
	open()
	e.version("v2", "")
	e.deploy("staging", core.StateSucceeded)
	e.serves(listen, "v2")
	e.noOrphans()
}
