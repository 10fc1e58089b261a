package deploy_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/deploy"
)

// TestOutcomes drives one deployment of c2 over a live c1 (or of c1 on an
// empty environment) into every terminal outcome and checks the
// invariant that matters in each: what serves, what runs, what is kept.
func TestOutcomes(t *testing.T) {
	t.Parallel()
	const svc = "hello-staging"
	probe := func(fail func(in core.Instance, req core.ProbeRequest) bool) func(core.Instance, core.ProbeRequest) (core.ProbeResult, error) {
		return func(in core.Instance, req core.ProbeRequest) (core.ProbeResult, error) {
			if fail(in, req) {
				return core.ProbeResult{Status: http.StatusInternalServerError}, nil
			}
			return core.ProbeResult{Status: http.StatusOK}, nil
		}
	}
	// errorsFor makes half the requests to release fail: the counters grow
	// at every read, as live traffic would make them.
	errorsFor := func(release int) func(int) deploy.RouteStats {
		var n uint64
		return func(r int) deploy.RouteStats {
			n += 100
			if r == release {
				return deploy.RouteStats{Requests: n, Errors5xx: n / 2}
			}
			return deploy.RouteStats{Requests: n}
		}
	}
	for _, tc := range []struct {
		name     string
		previous bool // c1 is live before c2 is deployed
		setup    func(r *rig)
		want     core.DeploymentState
		reason   string
		live     int   // release live afterwards
		routed   int   // release the proxy routes to afterwards
		running  []int // releases of the instances left running
		failedAt core.Colour
	}{
		{name: "first deploy succeeds", want: core.StateSucceeded, live: 1, routed: 1, running: []int{1, 1}},
		{name: "second deploy keeps the old colour warm", previous: true, want: core.StateSucceeded, live: 2, routed: 2, running: []int{1, 1, 2, 2}},
		{name: "health fails", previous: true, want: core.StateFailed, reason: "health gate", live: 1, routed: 1, running: []int{1, 1},
			setup: func(r *rig) {
				r.driver.ProbeFn = probe(func(in core.Instance, req core.ProbeRequest) bool { return in.Release == 2 })
			}},
		{name: "an instance exits before it is healthy", previous: true, want: core.StateFailed, reason: "exited (exit status 2)", live: 1, routed: 1, running: []int{1, 1},
			setup: func(r *rig) {
				r.driver.ProbeFn = probe(func(in core.Instance, req core.ProbeRequest) bool { return in.Release == 2 })
				r.driver.ExitedFn = func(in core.Instance) (string, bool) { return "exit status 2", in.Release == 2 }
			}},
		{name: "smoke fails", previous: true, want: core.StateFailed, reason: "smoke check", live: 1, routed: 1, running: []int{1, 1},
			setup: func(r *rig) {
				r.driver.ProbeFn = probe(func(in core.Instance, req core.ProbeRequest) bool { return in.Release == 2 && req.Path == "/" })
			}},
		{name: "migration fails", previous: true, want: core.StateFailed, reason: "migration failed", live: 1, routed: 1, running: []int{1, 1},
			setup: func(r *rig) {
				r.driver.TaskFn = func(ctx context.Context, spec core.TaskSpec, out io.Writer) error {
					if spec.Release == 2 {
						return errors.New("exit status 1")
					}
					return nil
				}
			}},
		{name: "switch fails", previous: true, want: core.StateFailed, reason: "switch", live: 1, routed: 1, running: []int{1, 1},
			setup: func(r *rig) {
				r.router.RouteFn = func(spec deploy.RouteSpec) error {
					if spec.Release == 2 {
						return errors.New("proxy unreachable")
					}
					return nil
				}
			}},
		{name: "verify fails with a previous colour", previous: true, want: core.StateRolledBack, reason: "error rate", live: 1, routed: 1, running: []int{1, 1, 2, 2}, failedAt: core.Green,
			setup: func(r *rig) { r.router.StatsFn = errorsFor(2) }},
		{name: "verify fails without a previous colour", want: core.StateFailed, reason: "no previous release", live: 1, routed: 1, running: []int{1, 1},
			setup: func(r *rig) { r.router.StatsFn = errorsFor(1) }},
		{name: "switch back fails", previous: true, want: core.StateFailed, reason: "switching back failed", live: 2, routed: 2, running: []int{1, 1, 2, 2},
			setup: func(r *rig) {
				r.router.StatsFn = errorsFor(2)
				switched := false
				r.router.RouteFn = func(spec deploy.RouteSpec) error {
					if spec.Release == 2 {
						switched = true
					} else if switched {
						return errors.New("proxy unreachable")
					}
					return nil
				}
			}},
		{name: "a step that cannot be recorded does not run", previous: true, want: core.StateFailed, reason: "record step start", live: 1, routed: 1, running: []int{1, 1},
			setup: func(r *rig) {
				r.store.Fail = func(method string, v any) error {
					if d, ok := v.(core.Deployment); ok && method == "UpdateDeployment" && d.Step == core.StepStart {
						return errors.New("disk full")
					}
					return nil
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t)
			r.start()
			if tc.previous {
				r.deployAndWait("staging", "c1", core.StateSucceeded)
			}
			if tc.setup != nil {
				tc.setup(r)
			}
			ref := "c1"
			if tc.previous {
				ref = "c2"
			}
			d := r.wait(r.deploy("staging", ref))
			if d.State != tc.want || !strings.Contains(d.Reason, tc.reason) {
				t.Fatalf("ended %s: %q; want %s with %q", d.State, d.Reason, tc.want, tc.reason)
			}
			st := r.state("staging")
			if st.LiveRelease() != tc.live {
				t.Errorf("live release = v%d, want v%d (state %+v)", st.LiveRelease(), tc.live, st)
			}
			if got := r.router.route(svc); got.Release != tc.routed || got.Colour != st.Live || len(got.Targets) == 0 {
				t.Errorf("routed to %+v, want v%d on the live colour %s", got, tc.routed, st.Live)
			}
			if got := r.driver.runningReleases(); !slices.Equal(got, tc.running) {
				t.Errorf("running releases = %v, want %v", got, tc.running)
			}
			if tc.failedAt != "" {
				if sl := st.Slots[tc.failedAt]; sl == nil || sl.State != core.SlotFailed || sl.Until.IsZero() {
					t.Errorf("%s = %+v, want a failed colour kept for investigation", tc.failedAt, sl)
				}
			}
			if tc.name == "a step that cannot be recorded does not run" && slices.Contains(r.driver.startedReleases(), 2) {
				t.Error("the start step ran although it could not be recorded")
			}
			if tc.name == "migration fails" && slices.Contains(r.driver.startedReleases(), 2) {
				t.Error("instances were started after the migration failed")
			}
			if holder, _ := r.store.LockHolder(context.Background(), "hello", "staging"); holder != "" {
				t.Errorf("lock still held by %q", holder)
			}
		})
	}
}

// TestRecovery records what a crash at each step of each kind of
// deployment leaves behind and starts a new machine on it: every
// deployment ends, traffic goes where the invariants say, nothing is
// orphaned and nothing verified is rolled back.
func TestRecovery(t *testing.T) {
	t.Parallel()
	type outcome struct {
		state core.DeploymentState
		live  int // release serving afterwards
	}
	steps := []core.Step{core.StepLock, core.StepMigrate, core.StepStart, core.StepHealth, core.StepSmoke, core.StepSwitch, core.StepVerify, core.StepLive, core.StepSwitchBack}
	for _, kind := range []core.DeploymentKind{core.KindDeploy, core.KindRollback, core.KindConfirm, core.KindRevert} {
		for _, step := range steps {
			for _, recorded := range []bool{false, true} { // was the state change of the step recorded before the crash?
				if !step.Switched() && recorded {
					continue
				}
				if (kind == core.KindConfirm || kind == core.KindRevert) && step.Switched() {
					continue // these never switch traffic
				}
				name := string(kind) + "/" + string(step)
				if step.Switched() {
					name += map[bool]string{false: "/before the state was recorded", true: "/after the state was recorded"}[recorded]
				}
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					r := newRig(t)
					r.start()
					r.deployAndWait("staging", "c1", core.StateSucceeded) // v1 on blue
					r.deployAndWait("staging", "c2", core.StateSucceeded) // v2 on green, v1 standby
					r.svc.Close()
					ctx := context.Background()

					// Fabricate the crash: a deployment of the kind, at the step, with
					// the colour it was working on in the state a crash there leaves.
					st := r.state("staging")
					target, colour := 3, core.Blue // a new release goes to the idle colour
					d := core.Deployment{App: "hello", Env: "staging", Kind: kind, Release: target, PreviousRelease: 2, Colour: colour,
						State: core.StateRunning, Step: step, RequestedBy: "ann", CreatedAt: time.Now(), UpdatedAt: time.Now()}
					switch kind {
					case core.KindDeploy:
						rel, _ := r.store.CreateRelease(ctx, core.Release{App: "hello", Env: "staging", SHA: sha(3), Digest: "sha256:" + sha(3)})
						_, _ = r.store.PutArtifact(ctx, core.Artifact{App: "hello", SHA: sha(3), Digest: "sha256:" + sha(3), Ref: "/artifacts/" + sha(3)})
						d.Release, d.SHA = rel.Number, rel.SHA
					case core.KindRollback:
						d.Release, d.SHA = 1, sha(1)
					case core.KindConfirm, core.KindRevert:
						d.Release, d.PreviousRelease, d.SHA = 2, 2, sha(2)
					}
					if d.Kind == core.KindRevert || d.Kind == core.KindConfirm || step == core.StepStart || step == core.StepHealth || step == core.StepSmoke || step.Switched() {
						// The colour was cleared and started: its instances run and are recorded.
						insts, _ := r.driver.Start(ctx, core.GroupSpec{App: "hello", Env: "staging", Colour: colour, Release: d.Release, Count: 2})
						_ = r.driver.Stop(ctx, st.Slots[colour].Instances, 0)
						sl := st.Slot(colour)
						sl.State, sl.Release, sl.Instances, sl.Until = core.SlotStarting, d.Release, insts, time.Time{}
						if step.Switched() && step != core.StepSwitch || recorded {
							sl.State = core.SlotLive
							st.Live = colour
							old := st.Slot(core.Green)
							old.State, old.Until = core.SlotStandby, time.Now().Add(time.Hour)
							if step == core.StepSwitchBack && recorded {
								st.Live = core.Green
								old.State, old.Until = core.SlotLive, time.Time{}
								sl.State, sl.Until = core.SlotFailed, time.Now().Add(time.Hour)
							}
						}
						if step == core.StepSwitch && !recorded {
							sl.State = core.SlotStarting
						}
						if step.Switched() && (step != core.StepSwitch || recorded) {
							_ = r.router.Route(ctx, deploy.RouteSpec{Service: "hello-staging", Colour: st.Live, Release: st.Slot(st.Live).Release, Targets: []string{"x"}})
						}
						var err error
						if st, err = r.store.PutEnvState(ctx, st); err != nil {
							t.Fatal(err)
						}
					}
					// A crash before the step's own write left no trace in the
					// state: a step of kind verify, switch_back or live implies the
					// switch was recorded (its state write precedes the step).
					if step == core.StepVerify || step == core.StepLive || (step == core.StepSwitchBack && !recorded) {
						if st.Live != colour {
							t.Fatalf("fixture: live %s", st.Live)
						}
					}
					d, err := r.store.CreateDeployment(ctx, d)
					if err != nil {
						t.Fatal(err)
					}
					_ = r.store.TryLock(ctx, "hello", "staging", "deployment "+strconv.FormatInt(d.ID, 10)+" on crashed-server", time.Hour)

					r.start() // the restart
					got := r.wait(d)

					want := outcome{state: core.StateFailed, live: 2}
					switch {
					case step == core.StepLive:
						want = outcome{core.StateSucceeded, d.Release} // verification had passed: never rolled back
					case step == core.StepSwitchBack && recorded:
						want = outcome{core.StateRolledBack, 2}
					case step.Switched() && (step != core.StepSwitch || recorded):
						want = outcome{core.StateRolledBack, 2} // traffic had moved: back to the previous colour
					}
					after := r.state("staging")
					if got.State != want.state || after.LiveRelease() != want.live {
						t.Fatalf("after recovery: deployment %s (%q), live v%d; want %s, live v%d", got.State, got.Reason, after.LiveRelease(), want.state, want.live)
					}
					if rt := r.router.route("hello-staging"); rt.Release != want.live {
						t.Errorf("proxy routes to v%d, want v%d", rt.Release, want.live)
					}
					// No orphans: every running instance is recorded in a slot, and
					// no slot is left starting.
					known := map[string]bool{}
					for _, sl := range after.Slots {
						if sl.State == core.SlotStarting {
							t.Errorf("%s left starting", sl.Colour)
						}
						for _, in := range sl.Instances {
							known[in.ID] = true
						}
					}
					insts, _ := r.driver.List(ctx)
					for _, in := range insts {
						if !known[in.ID] {
							t.Errorf("orphan instance %s (v%d) still running", in.ID, in.Release)
						}
					}
					if holder, _ := r.store.LockHolder(ctx, "hello", "staging"); holder != "" {
						t.Errorf("lock still held by %q", holder)
					}
				})
			}
		}
	}
}

// A crash between moving the proxy and recording the switch: recovery
// routes the proxy back to the recorded live colour before it stops the
// new one, so no request meets a stopped instance. If the proxy cannot be
// reached, the new colour keeps running, the environment is degraded, and
// the tick routes it once the proxy answers.
func TestRecoveryRoutesBackBeforeStopping(t *testing.T) {
	t.Parallel()
	for _, reachable := range []bool{true, false} {
		t.Run(map[bool]string{true: "proxy reachable", false: "proxy unreachable"}[reachable], func(t *testing.T) {
			t.Parallel()
			r := newRig(t)
			r.start()
			r.deployAndWait("staging", "c1", core.StateSucceeded) // v1 blue
			r.deployAndWait("staging", "c2", core.StateSucceeded) // v2 green, v1 blue standby
			r.svc.Close()
			ctx := context.Background()
			st := r.state("staging")
			rel, _ := r.store.CreateRelease(ctx, core.Release{App: "hello", Env: "staging", SHA: sha(3), Digest: "sha256:" + sha(3)})
			_, _ = r.store.PutArtifact(ctx, core.Artifact{App: "hello", SHA: sha(3), Digest: "sha256:" + sha(3), Ref: "/artifacts/" + sha(3)})
			_ = r.driver.Stop(ctx, st.Slots[core.Blue].Instances, 0)
			insts, _ := r.driver.Start(ctx, core.GroupSpec{App: "hello", Env: "staging", Colour: core.Blue, Release: rel.Number, Count: 2})
			blue := st.Slot(core.Blue)
			blue.State, blue.Release, blue.Instances, blue.Until = core.SlotStarting, rel.Number, insts, time.Time{}
			if _, err := r.store.PutEnvState(ctx, st); err != nil {
				t.Fatal(err)
			}
			// The proxy was switched to blue v3; the crash came before the state said so.
			_ = r.router.Route(ctx, deploy.RouteSpec{Service: "hello-staging", Colour: core.Blue, Release: rel.Number, Targets: []string{insts[0].Addr}})
			d, _ := r.store.CreateDeployment(ctx, core.Deployment{App: "hello", Env: "staging", Kind: core.KindDeploy, Release: rel.Number, SHA: rel.SHA,
				PreviousRelease: 2, Colour: core.Blue, State: core.StateRunning, Step: core.StepSwitch, CreatedAt: time.Now(), UpdatedAt: time.Now()})

			var mu sync.Mutex
			var order []string
			r.router.RouteFn = func(spec deploy.RouteSpec) error {
				mu.Lock()
				defer mu.Unlock()
				if !reachable {
					return errors.New("dial unix proxy.sock: connection refused")
				}
				order = append(order, "route v"+strconv.Itoa(spec.Release))
				return nil
			}
			r.driver.StopFn = func(insts []core.Instance) {
				mu.Lock()
				defer mu.Unlock()
				order = append(order, "stop v"+strconv.Itoa(insts[0].Release))
			}
			r.start()
			if got := r.wait(d); got.State != core.StateFailed {
				t.Fatalf("recovered deployment = %s %q", got.State, got.Reason)
			}
			mu.Lock()
			got := slices.Clone(order)
			mu.Unlock()
			if reachable {
				if len(got) < 2 || got[0] != "route v2" || got[1] != "stop v3" {
					t.Errorf("recovery did %v; want the route back to v2 before v3 is stopped", got)
				}
				return
			}
			if slices.Contains(got, "stop v3") {
				t.Errorf("the new colour was stopped while the proxy may still send to it: %v", got)
			}
			st2, _ := r.svc.Status(ctx, "hello")
			if !strings.Contains(st2[0].Degraded, "connection refused") {
				t.Errorf("status while the proxy is unreachable: degraded %q", st2[0].Degraded)
			}
			mu.Lock()
			reachable = true // the proxy is back
			mu.Unlock()
			r.svc.Tick(ctx)
			waitFor(t, "the re-route", func() bool { return r.svc.QueueIdle("hello", "staging") })
			if rt := r.router.route("hello-staging"); rt.Release != 2 {
				t.Errorf("after the proxy came back it routes to v%d, want v2", rt.Release)
			}
			if st2, _ := r.svc.Status(ctx, "hello"); st2[0].Degraded != "" {
				t.Errorf("still degraded: %q", st2[0].Degraded)
			}
			if blue := r.state("staging").Slots[core.Blue]; blue.State != core.SlotEmpty || !slices.Equal(r.driver.runningReleases(), []int{2, 2}) {
				t.Errorf("after the re-route the colour left starting is %+v; running %v", blue, r.driver.runningReleases())
			}
		})
	}
}
