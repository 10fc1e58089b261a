package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/examples"
	"github.com/cutover/cutover/internal/core"
)

// Continuous delivery to staging with memory: new heads deploy on their
// own; a commit switched back is never auto-deployed again; the next one
// waits for the lock the switch-back set, then deploys once it is lifted.
func TestAutoDeployWithMemory(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *examples.HelloOptions) { o.Verify = 3 * time.Second })
	ctx := context.Background()
	if _, err := e.svc.SetPolicy(ctx, "hello", []byte("environments:\n  staging:\n    auto_deploy: {branch: main}\n"), "root"); err != nil {
		t.Fatal(err)
	}
	auto := func(sha string) []core.Deployment {
		t.Helper()
		ds, err := e.svc.AutoDeploy(ctx, "hello", "main", sha)
		if err != nil {
			t.Fatal(err)
		}
		return ds
	}
	head, err := e.svc.CheckPolicy(ctx, "hello", "staging", "", "x")
	if err != nil {
		t.Fatal(err)
	}
	ds := auto(head.SHA)
	if len(ds) != 1 {
		t.Fatalf("auto-deploy of the first head = %v", ds)
	}
	e.wait(ds[0], core.StateSucceeded)
	if again := auto(head.SHA); len(again) != 0 {
		t.Errorf("the live head was deployed again: %v", again)
	}
	bad := e.version("v2", "after") // fails verification
	ds = auto(bad)
	e.wait(ds[0], core.StateRolledBack)
	if again := auto(bad); len(again) != 0 { // a poll or a webhook retry
		t.Fatalf("a switched-back commit was auto-deployed again: %v", again)
	}
	fixed := e.version("v3", "")
	ds = auto(fixed)
	if len(ds) != 1 || ds[0].RequestedBy != "auto-deploy" {
		t.Fatalf("auto-deploy of the fix = %v", ds)
	}
	var d core.Deployment
	waitShowing(t, "the fix to wait for the lock", 20*time.Second, func() bool {
		d, _ = e.svc.Deployment(ctx, ds[0].ID)
		return d.State == core.StateWaiting && strings.Contains(d.WaitingOn, "lock")
	}, func() string {
		return fmt.Sprintf("the fix does not wait for the lock: %s %q %q", d.State, d.WaitingOn, d.Reason)
	})
	if err := e.svc.Unlock(ctx, "hello", "staging", "ann"); err != nil {
		t.Fatal(err)
	}
	e.wait(ds[0], core.StateSucceeded) // the tick admits it
	e.serves(e.staging, "v3")
}

// With poll set, the tick deploys the branch head on its own.
func TestAutoDeployPolls(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.svc.SetPolicy(ctx, "hello", []byte("environments:\n  staging:\n    auto_deploy: {branch: main, poll: 5s}\n"), "root"); err != nil {
		t.Fatal(err)
	}
	var hist []core.Deployment
	waitShowing(t, "the poll to deploy the head", 30*time.Second, func() bool {
		hist, _ = e.svc.History(ctx, "hello", "staging", 0, 5)
		return len(hist) > 0 && hist[0].RequestedBy == "auto-deploy" && hist[0].State == core.StateSucceeded
	}, func() string { return fmt.Sprintf("the poll did not deploy the head: %+v", hist) })
	e.serves(e.staging, "v1")
}
