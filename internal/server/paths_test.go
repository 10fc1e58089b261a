package server_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/examples"
	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/gitx"
	"github.com/cutover/cutover/internal/testutil"
)

// The README's own way: a relative --data-dir and a relative --repo. The
// app starts (its run command is relative too), and a server started later
// from another directory still rolls back to the earlier release.
func TestRelativePathsAndAnotherDirectory(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and the example app")
	}
	t.Parallel()
	bin := cutoverBin(t)
	work, elsewhere := t.TempDir(), t.TempDir()
	e := &env{t: t, repo: filepath.Join(work, "hello")}
	staging := testutil.ListenAddr(t)
	if err := examples.WriteHello(e.repo, examples.HelloOptions{StagingListen: staging, ProductionListen: testutil.ListenAddr(t), Verify: 250 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if err := gitx.Init(context.Background(), e.repo); err != nil {
		t.Fatal(err)
	}
	e.commit("v1")
	p := startServerIn(t, work, bin, ".cutover")
	// The CLI, run from the working directory, sends the repository's absolute path.
	add := exec.Command(bin, "app", "add", "hello", "--repo", "./hello")
	add.Dir = work
	add.Env = append(os.Environ(), "CUTOVER_SERVER="+p.base, "CUTOVER_TOKEN="+crashToken)
	if out, err := add.CombinedOutput(); err != nil || !strings.Contains(string(out), filepath.Join(work, "hello")) {
		t.Fatalf("app add --repo ./hello from %s: %v\n%s", work, err, out)
	}
	d := p.deploy("staging")
	if got := p.waitFor(d.ID, func(d core.Deployment) bool { return d.State.Terminal() }, 60*time.Second); got.State != core.StateSucceeded {
		t.Fatalf("v1 from a relative data dir: %s %q\n%s", got.State, got.Reason, p.log.String())
	}
	e.version("v2", "")
	d = p.deploy("staging")
	p.waitFor(d.ID, func(d core.Deployment) bool { return d.State.Terminal() }, 60*time.Second)
	e.serves(staging, "v2")
	p.kill()

	// Another directory, the same data dir by its absolute path: v1 is still there.
	p = startServerIn(t, elsewhere, bin, filepath.Join(work, ".cutover"))
	var rb core.Deployment
	if code := p.call("POST", "/api/v1/apps/hello/envs/staging/rollback", map[string]any{"to": 1}, &rb); code != 202 {
		t.Fatalf("rollback: %d\n%s", code, p.log.String())
	}
	if got := p.waitFor(rb.ID, func(d core.Deployment) bool { return d.State.Terminal() }, 60*time.Second); got.State != core.StateSucceeded {
		t.Fatalf("rollback after a restart from elsewhere: %s %q", got.State, got.Reason)
	}
	e.serves(staging, "v1")
	if _, err := os.Stat(filepath.Join(elsewhere, ".cutover")); !os.IsNotExist(err) {
		t.Errorf("a data dir appeared in the other directory: %v", err)
	}
	stopAllIn(t, filepath.Join(work, ".cutover"))
}

// An app whose repository is a URL (file:// here; https:// works the same
// way) is read through a mirror that follows new commits.
func TestRemoteRepository(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	if err := e.svc.RemoveApp(ctx, "hello", "tester"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.AddApp(ctx, "hello", "file://"+e.repo); err != nil {
		t.Fatalf("add an app by URL: %v", err)
	}
	e.deploy("staging", core.StateSucceeded)
	e.serves(e.staging, "v1")
	e.version("v2", "") // pushed to the origin after the mirror was made
	e.deploy("staging", core.StateSucceeded)
	e.serves(e.staging, "v2")
}
