package deploy_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/deploy"
)

// A deployment waiting on a condition is recorded and visible, holds up
// nothing (a rollback of the same environment goes through), is admitted
// when the condition holds, and can be cancelled.
func TestWaitingDeployment(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	gate := &flagGate{env: "staging"}
	r.gates = []deploy.Gate{gate}
	gate.open() // the first two deploys go through
	r.start()
	r.deployAndWait("staging", "c1", core.StateSucceeded)
	r.deployAndWait("staging", "c2", core.StateSucceeded)
	gate.mu.Lock()
	gate.ok = false
	gate.mu.Unlock()

	waiting := r.deploy("staging", "c3")
	waitFor(t, "the deployment to wait", func() bool {
		d, _ := r.svc.Deployment(context.Background(), waiting.ID)
		return d.State == core.StateWaiting
	})
	d, _ := r.svc.Deployment(context.Background(), waiting.ID)
	if d.WaitingOn != "the test flag" || d.Release != 0 {
		t.Errorf("waiting deployment = %+v", d)
	}
	st, err := r.svc.Status(context.Background(), "hello")
	if err != nil || len(st) != 1 || st[0].Current == nil || st[0].Current.ID != waiting.ID || st[0].Current.State != core.StateWaiting {
		t.Errorf("status does not show the waiting deployment: %+v, %v", st, err)
	}

	// A rollback is exempt from gates and is not held up by it.
	rb, err := r.svc.Rollback(context.Background(), deploy.RollbackRequest{App: "hello", Env: "staging", RequestedBy: "ann"})
	if err != nil {
		t.Fatal(err)
	}
	rb = r.wait(rb)
	if st := r.state("staging"); rb.State != core.StateSucceeded || st.LiveRelease() != 1 {
		t.Fatalf("rollback while a deployment waits: %s %q, live v%d", rb.State, rb.Reason, st.LiveRelease())
	}
	r.svc.Tick(context.Background())
	if d, _ := r.svc.Deployment(context.Background(), waiting.ID); d.State != core.StateWaiting {
		t.Fatalf("admitted although its condition does not hold: %s", d.State)
	}

	// Cancel a second waiting one; admit the first when the flag opens.
	other := r.deploy("staging", "c4")
	waitFor(t, "the second deployment to wait", func() bool {
		d, _ := r.svc.Deployment(context.Background(), other.ID)
		return d.State == core.StateWaiting
	})
	if c, err := r.svc.Cancel(context.Background(), other.ID, "bob"); err != nil || c.State != core.StateCancelled || !strings.Contains(c.Reason, "bob") {
		t.Fatalf("cancel = %+v, %v", c, err)
	}
	if _, err := r.svc.Cancel(context.Background(), other.ID, "bob"); !errors.Is(err, core.ErrConflict) {
		t.Errorf("cancelling twice: %v, want ErrConflict", err)
	}
	gate.open()
	r.svc.Tick(context.Background())
	if d, st := r.wait(waiting), r.state("staging"); d.State != core.StateSucceeded || st.LiveRelease() != d.Release {
		t.Fatalf("admitted deployment = %s %q", d.State, d.Reason)
	}
	if d, _ := r.svc.Deployment(context.Background(), other.ID); d.State != core.StateCancelled {
		t.Errorf("a cancelled deployment ran: %s", d.State)
	}
	var types []core.EventType
	es, _ := r.svc.Events(context.Background(), "hello", 0, 1000)
	for _, e := range es {
		if e.DeploymentID == waiting.ID {
			types = append(types, e.Type)
		}
	}
	joined := strings.Join(func() []string {
		var s []string
		for _, t := range types {
			s = append(s, string(t))
		}
		return s
	}(), " ")
	if !strings.Contains(joined, "deploy.waiting deploy.admitted") || !strings.HasSuffix(joined, "deploy.succeeded") {
		t.Errorf("events of the waiting deployment: %s", joined)
	}
}

// A running deployment cannot be cancelled half-way; a queued one can, and
// never runs.
func TestCancelQueuedNotRunning(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	release := make(chan struct{})
	r.driver.TaskFn = func(ctx context.Context, spec core.TaskSpec, out io.Writer) error {
		<-release // the migration of the first deployment holds the environment
		return nil
	}
	r.start()
	first := r.deploy("staging", "c1")
	waitFor(t, "the first deployment to run", func() bool {
		d, _ := r.svc.Deployment(context.Background(), first.ID)
		return d.Step == core.StepMigrate
	})
	second := r.deploy("staging", "c2")
	waitFor(t, "the second deployment to be queued", func() bool {
		d, _ := r.svc.Deployment(context.Background(), second.ID)
		return d.Step == core.StepQueued
	})
	if _, err := r.svc.Cancel(context.Background(), first.ID, "ann"); !errors.Is(err, core.ErrConflict) {
		t.Errorf("cancel a running deployment: %v, want ErrConflict", err)
	}
	if _, err := r.svc.Cancel(context.Background(), second.ID, "ann"); err != nil {
		t.Fatal(err)
	}
	close(release)
	if d := r.wait(first); d.State != core.StateSucceeded {
		t.Fatalf("first = %s %q", d.State, d.Reason)
	}
	if d := r.wait(second); d.State != core.StateCancelled || d.SwitchedAt != nil {
		t.Errorf("second = %+v", d)
	}
	if got := r.driver.startedReleases(); len(got) != 1 {
		t.Errorf("started releases = %v: the cancelled deployment ran", got)
	}
}

// A hold taken while a deployment runs is kept: the deployment does not
// replace the held colour, and its own writes do not erase the hold.
// Without the hold, the same deployment does replace that colour.
func TestHoldRacesARunningDeployment(t *testing.T) {
	t.Parallel()
	for _, hold := range []bool{true, false} {
		t.Run(map[bool]string{true: "held", false: "not held"}[hold], func(t *testing.T) {
			t.Parallel()
			r := newRig(t)
			r.start()
			r.deployAndWait("staging", "c1", core.StateSucceeded)
			r.router.StatsFn = failing(2)
			r.deployAndWait("staging", "c2", core.StateRolledBack) // green keeps failed v2
			r.router.StatsFn = nil

			migrating := make(chan struct{})
			release := make(chan struct{})
			r.driver.TaskFn = func(ctx context.Context, spec core.TaskSpec, out io.Writer) error {
				close(migrating)
				<-release
				return nil
			}
			d := r.deploy("staging", "c3")
			<-migrating // the deployment runs: it has read the state, the failed colour not yet held
			if hold {
				if _, err := r.svc.Hold(context.Background(), "hello", "staging", time.Hour, "ann"); err != nil {
					t.Fatal(err)
				}
			}
			close(release)
			d = r.wait(d)
			green := r.state("staging").Slots[core.Green]
			if hold {
				if d.State != core.StateFailed || !strings.Contains(d.Reason, "held for investigation") {
					t.Fatalf("deployment over a held colour = %s %q", d.State, d.Reason)
				}
				if green.State != core.SlotFailed || green.Release != 2 || green.HeldUntil.IsZero() {
					t.Errorf("the hold was lost: green = %+v", green)
				}
				return
			}
			if d.State != core.StateSucceeded || green.Release != 3 {
				t.Errorf("without a hold the failed colour is replaced: %s %q, green = %+v", d.State, d.Reason, green)
			}
		})
	}
}

// After its investigation time a failed colour is reverted to the live
// release by a recorded deployment; a hold postpones that past the same
// moment. The clock is moved, not waited for.
func TestHoldPostponesRevert(t *testing.T) {
	t.Parallel()
	for _, hold := range []bool{false, true} {
		t.Run(map[bool]string{true: "held", false: "not held"}[hold], func(t *testing.T) {
			t.Parallel()
			r := newRig(t)
			r.start()
			r.deployAndWait("staging", "c1", core.StateSucceeded)
			r.router.StatsFn = failing(2)
			r.deployAndWait("staging", "c2", core.StateRolledBack) // green: failed v2, investigate_for 1h
			if hold {
				if _, err := r.svc.Hold(context.Background(), "hello", "staging", 3*time.Hour, "ann"); err != nil {
					t.Fatal(err)
				}
			}
			r.advance(2 * time.Hour) // past the investigation time, not past the hold
			for range 3 {
				r.svc.Tick(context.Background())
			}
			waitFor(t, "the queue to be idle", func() bool { return r.svc.QueueIdle("hello", "staging") })
			green := r.state("staging").Slots[core.Green]
			hist, _ := r.svc.History(context.Background(), "hello", "staging", 0, 10)
			reverts := 0
			for _, d := range hist {
				if d.Kind == core.KindRevert {
					reverts++
				}
			}
			if hold {
				if green.State != core.SlotFailed || green.Release != 2 || reverts != 0 {
					t.Errorf("held colour = %+v after %d revert(s); want failed v2 kept, no revert", green, reverts)
				}
				return
			}
			if green.State != core.SlotStandby || green.Release != 1 || reverts != 1 {
				t.Errorf("unheld colour = %+v after %d revert(s); want one revert to a standby of v1", green, reverts)
			}
		})
	}
}

// failing makes every request to release fail; the counters grow at every
// read, as live traffic would make them.
func failing(release int) func(int) deploy.RouteStats {
	var mu sync.Mutex
	var n uint64
	return func(rel int) deploy.RouteStats {
		mu.Lock()
		defer mu.Unlock()
		n += 100
		if rel == release {
			return deploy.RouteStats{Requests: n, Errors5xx: n}
		}
		return deploy.RouteStats{Requests: n}
	}
}

// Repeated rollbacks go further back, never forward to the release the
// previous rollback left (the seed incident's trap); --to still reaches
// any release, and a release deployed again is a target again.
func TestRepeatedRollbackGoesFurtherBack(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.start()
	for _, c := range []string{"c1", "c2", "c3"} {
		r.deployAndWait("staging", c, core.StateSucceeded) // v1, v2, v3
	}
	rollback := func(req deploy.RollbackRequest) core.Deployment {
		t.Helper()
		req.App, req.Env = "hello", "staging"
		d, err := r.svc.Rollback(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if d = r.wait(d); d.State != core.StateSucceeded {
			t.Fatalf("rollback = %s %q", d.State, d.Reason)
		}
		return d
	}
	for _, want := range []int{2, 1} {
		if d := rollback(deploy.RollbackRequest{}); d.Release != want {
			t.Fatalf("rollback went to v%d, want v%d", d.Release, want)
		}
	}
	if _, err := r.svc.Rollback(context.Background(), deploy.RollbackRequest{App: "hello", Env: "staging"}); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("rollback from v1 with v2 and v3 both left behind: %v, want ErrInvalid", err)
	}
	if d := rollback(deploy.RollbackRequest{To: 2}); d.Release != 2 {
		t.Fatalf("--to 2 went to v%d", d.Release)
	}
	// v1 was left by that rollback, v3 by the first: nothing earlier is left.
	if _, err := r.svc.Rollback(context.Background(), deploy.RollbackRequest{App: "hello", Env: "staging"}); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("rollback from v2 after leaving v3 and v1: %v, want ErrInvalid", err)
	}
	// A release deployed again is a target again.
	r.deployAndWait("staging", "c3", core.StateSucceeded) // v4, a new release of c3
	if d := rollback(deploy.RollbackRequest{}); d.Release != 2 {
		t.Errorf("after deploying c3 again, rollback went to v%d, want v2", d.Release)
	}
}

// A rollback to a release with another config says what the config change
// is (names only) before it runs; with KeepConfig it ships the target's
// code with today's config instead.
func TestRollbackConfigChange(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.start()
	ctx := context.Background()
	r.deployAndWait("staging", "c1", core.StateSucceeded) // v1, no config
	if _, err := r.svc.SetConfig(ctx, "hello", "staging", map[string]string{"GREETING": "hi"}, map[string]string{"API_KEY": "s3cret-value-1234"}); err != nil {
		t.Fatal(err)
	}
	r.deployAndWait("staging", "c2", core.StateSucceeded) // v2 with config v1

	d, err := r.svc.Rollback(ctx, deploy.RollbackRequest{App: "hello", Env: "staging", KeepConfig: true})
	if err != nil {
		t.Fatal(err)
	}
	d = r.wait(d)
	rel, _ := r.store.GetRelease(ctx, "hello", d.Release)
	if d.State != core.StateSucceeded || rel.SHA != sha(1) || rel.ConfigVersion != 1 {
		t.Fatalf("keep-config rollback = %s, release %+v; want c1's code with config v1", d.State, rel)
	}

	r.deployAndWait("staging", "c2", core.StateSucceeded)
	d, err = r.svc.Rollback(ctx, deploy.RollbackRequest{App: "hello", Env: "staging", To: 1})
	if err != nil {
		t.Fatal(err)
	}
	r.wait(d)
	es, _ := r.svc.Events(ctx, "hello", 0, 1000)
	var said string
	for _, e := range es {
		if e.Type == core.EventDeployInfo && strings.Contains(e.Message, "also changes its config") {
			said = e.Message
		}
	}
	if !strings.Contains(said, "removed: API_KEY (secret), GREETING") || strings.Contains(said, "s3cret") {
		t.Errorf("config change said = %q", said)
	}
}

// Stop takes an environment out of service (route removed before the
// instances stop) as a recorded deployment; a deploy brings it back.
func TestStopAndBringBack(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.start()
	r.deployAndWait("staging", "c1", core.StateSucceeded)
	r.deployAndWait("staging", "c2", core.StateSucceeded)
	var mu sync.Mutex
	routed := true
	r.driver.StopFn = func([]core.Instance) {
		mu.Lock()
		defer mu.Unlock()
		routed = r.router.route("hello-staging").Service != ""
	}
	d, err := r.svc.Stop(context.Background(), "hello", "staging", "ann")
	if err != nil {
		t.Fatal(err)
	}
	if d = r.wait(d); d.State != core.StateSucceeded || d.Kind != core.KindStop {
		t.Fatalf("stop = %s %s %q", d.Kind, d.State, d.Reason)
	}
	mu.Lock()
	if routed {
		t.Error("instances were stopped while the proxy still routed to them")
	}
	mu.Unlock()
	st := r.state("staging")
	if st.LiveRelease() != 0 || len(r.driver.runningReleases()) != 0 {
		t.Errorf("after stop: live v%d, running %v", st.LiveRelease(), r.driver.runningReleases())
	}
	if _, err := r.svc.Stop(context.Background(), "hello", "staging", "ann"); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("stopping a stopped environment: %v, want ErrNotFound", err)
	}
	back := r.deployAndWait("staging", "c2", core.StateSucceeded)
	if st := r.state("staging"); st.LiveRelease() != back.Release || r.router.route("hello-staging").Release != back.Release {
		t.Errorf("after the deploy: live v%d", st.LiveRelease())
	}
}

// The retention collects the artifacts no rollback can target any more,
// and never one a colour runs or a rollback may still choose.
func TestArtifactRetention(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.start()
	svc, err := deploy.New(deploy.Config{Store: r.store, Driver: r.driver, Router: r.router, Builder: r.builder,
		Source: fakeSource{manifest: []byte(testManifest)}, TickInterval: time.Hour, Now: r.now, KeepReleases: 2})
	if err != nil {
		t.Fatal(err)
	}
	r.svc.Close()
	if err := svc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	r.svc = svc
	for _, c := range []string{"c1", "c2", "c3", "c4", "c5", "c6"} {
		r.deployAndWait("staging", c, core.StateSucceeded) // #1..#6; #5 stays warm as the standby
	}
	removed, err := svc.CollectArtifacts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var gone []string
	for _, a := range removed {
		gone = append(gone, a.SHA)
	}
	slices.Sort(gone)
	// Kept: #6 live, #5 standby and rollback target, #4 the second rollback target.
	if want := []string{sha(1), sha(2), sha(3)}; !slices.Equal(gone, want) {
		t.Fatalf("collected %d artifact(s) %v, want those of c1, c2 and c3", len(gone), gone)
	}
	for _, n := range []int{4, 5, 6} {
		if _, err := r.store.GetArtifact(context.Background(), "hello", sha(n)); err != nil {
			t.Errorf("the artifact of c%d was collected: %v", n, err)
		}
	}
	// The two newest rollback targets still work; an older one says why not.
	if d := r.wait(mustRollback(t, r, deploy.RollbackRequest{Steps: 2})); d.State != core.StateSucceeded || d.Release != 4 {
		t.Errorf("rollback two steps = #%d %s %q", d.Release, d.State, d.Reason)
	}
	if _, err := svc.Rollback(context.Background(), deploy.RollbackRequest{App: "hello", Env: "staging", To: 1}); !errors.Is(err, core.ErrNotFound) || !strings.Contains(err.Error(), "collected") {
		t.Errorf("rollback to a collected release: %v", err)
	}
}

func mustRollback(t *testing.T, r *rig, req deploy.RollbackRequest) core.Deployment {
	t.Helper()
	req.App, req.Env = "hello", "staging"
	d, err := r.svc.Rollback(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// A rollback to a release whose artifact can no longer run (an image
// gone from every host and the registry) is refused before it is
// recorded; once it is available again the same rollback runs.
func TestRollbackRefusedWhenArtifactGone(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.start()
	r.deployAndWait("staging", "c1", core.StateSucceeded)
	r.deployAndWait("staging", "c2", core.StateSucceeded)
	r.builder.mu.Lock()
	r.builder.available = func(a core.Artifact) error {
		if a.SHA == sha(1) {
			return fmt.Errorf("%w: image reg/hello@sha256:1 is gone: on no Docker host and not in the registry", core.ErrNotFound)
		}
		return nil
	}
	r.builder.mu.Unlock()
	ctx := context.Background()
	before, _ := r.svc.History(ctx, "hello", "staging", 0, 10)
	_, err := r.svc.Rollback(ctx, deploy.RollbackRequest{App: "hello", Env: "staging"})
	if !errors.Is(err, core.ErrNotFound) || !strings.Contains(err.Error(), "#1 (111111111111) cannot run") || !strings.Contains(err.Error(), "is gone") {
		t.Fatalf("rollback to a gone artifact: %v; want ErrNotFound naming the release and saying its image is gone", err)
	}
	if after, _ := r.svc.History(ctx, "hello", "staging", 0, 10); len(after) != len(before) {
		t.Errorf("the refused rollback was recorded: %d deployments, were %d", len(after), len(before))
	}
	if st := r.state("staging"); st.LiveRelease() != 2 {
		t.Errorf("live = #%d after a refused rollback, want #2", st.LiveRelease())
	}
	r.builder.mu.Lock()
	r.builder.available = nil
	r.builder.mu.Unlock()
	rb, err := r.svc.Rollback(ctx, deploy.RollbackRequest{App: "hello", Env: "staging"})
	if err != nil {
		t.Fatal(err)
	}
	rb = r.wait(rb)
	if st := r.state("staging"); rb.State != core.StateSucceeded || st.LiveRelease() != 1 {
		t.Errorf("rollback once the artifact is back: %s %q, live #%d", rb.State, rb.Reason, st.LiveRelease())
	}
}

// The retention waits while a build runs (its image is no artifact yet and
// would be pruned as a leftover), and runs once it has been recorded.
func TestRetentionWaitsForBuilds(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.start()
	r.builder.mu.Lock()
	r.builder.started, r.builder.release = make(chan struct{}), make(chan struct{})
	r.builder.mu.Unlock()
	d := r.deploy("staging", "c1")
	<-r.builder.started
	if _, err := r.svc.CollectArtifacts(context.Background()); !errors.Is(err, deploy.ErrBuildRunning) {
		t.Errorf("retention during a build: %v, want ErrBuildRunning", err)
	}
	close(r.builder.release)
	if d = r.wait(d); d.State != core.StateSucceeded {
		t.Fatalf("deploy = %s %q", d.State, d.Reason)
	}
	if _, err := r.svc.CollectArtifacts(context.Background()); err != nil {
		t.Errorf("retention after the build: %v", err)
	}
}
