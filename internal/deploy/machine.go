package deploy

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/manifest"
)

// run is the working set of one deployment while it executes.
type run struct {
	d     core.Deployment
	rel   core.Release
	art   core.Artifact
	m     *manifest.Manifest
	env   manifest.Environment
	state core.EnvState
	// locked is set once this run holds the environment lock; stopRenew
	// stops its renewal and waits until it has stopped.
	locked    bool
	stopRenew func()
}

func (r *run) stopRenewing() {
	if r.stopRenew != nil {
		r.stopRenew()
		r.stopRenew = nil
	}
}

// step persists the step before running it: a step that cannot be
// recorded does not run (the error ends the deployment). It also renews
// the environment lock, so a long deployment keeps it.
func (s *Service) step(ctx context.Context, r *run, step core.Step, msg string) error {
	r.d.Step = step
	r.d.State = core.StateRunning
	r.d.UpdatedAt = s.now()
	if err := s.cfg.Store.UpdateDeployment(context.WithoutCancel(ctx), r.d); err != nil {
		return fmt.Errorf("record step %s: %w", step, err)
	}
	if r.locked {
		if err := s.cfg.Store.TryLock(ctx, r.d.App, r.d.Env, s.lockHolder(r.d), DefaultLockTTL); err != nil {
			return fmt.Errorf("renew lock before %s: %w", step, err)
		}
	}
	s.emit(ctx, event(r.d, core.EventDeployStep, msg))
	return nil
}

// renewLock keeps the environment lock of d until ctx ends.
func (s *Service) renewLock(ctx context.Context, d core.Deployment) {
	t := time.NewTicker(DefaultLockTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.cfg.Store.TryLock(ctx, d.App, d.Env, s.lockHolder(d), DefaultLockTTL); err != nil && ctx.Err() == nil {
				s.log.Error("renew environment lock", "app", d.App, "env", d.Env, "deployment", d.ID, "err", err)
			}
		}
	}
}

// lockHolder names a deployment and this server in the environment lock.
func (s *Service) lockHolder(d core.Deployment) string {
	return holderOf(d) + " on " + s.cfg.Holder
}

func (s *Service) finish(ctx context.Context, r *run, state core.DeploymentState, reason string) {
	ctx = context.WithoutCancel(ctx)
	now := s.now()
	r.d.State, r.d.Reason, r.d.UpdatedAt, r.d.FinishedAt = state, reason, now, &now
	r.d.Step = core.StepDone
	if err := s.cfg.Store.UpdateDeployment(ctx, r.d); err != nil {
		s.log.Error("persist outcome", "deployment", r.d.ID, "err", err)
	}
	if r.locked {
		r.stopRenewing() // never renewed after this unlock
		_ = s.cfg.Store.Unlock(ctx, r.d.App, r.d.Env, s.lockHolder(r.d))
		r.locked = false
	}
	label := fmt.Sprintf("#%d", r.d.Release)
	var msg string
	switch state {
	case core.StateSucceeded:
		msg = fmt.Sprintf("%s of %s succeeded", r.d.Kind, label)
	case core.StateRolledBack:
		msg = fmt.Sprintf("%s of %s rolled back: %s", r.d.Kind, label, reason)
	default:
		msg = fmt.Sprintf("%s of %s %s: %s", r.d.Kind, label, state, reason)
	}
	s.emit(ctx, event(r.d, core.OutcomeEvent(state), msg))
	s.notifyDone(r.d.ID)
}

// runDeployment executes a queued deployment to a terminal state.
func (s *Service) runDeployment(ctx context.Context, id int64) {
	// pending -> running under dmu, so a cancel either wins before the
	// deployment starts or is refused once it has.
	d, err := s.transition(ctx, id, func(d *core.Deployment) error {
		d.State, d.Step = core.StateRunning, core.StepLock
		return nil
	})
	if err != nil {
		if !errors.Is(err, errGone) {
			s.log.Error("start deployment", "deployment", id, "err", err)
			if ctx.Err() == nil {
				s.finish(ctx, &run{d: d}, core.StateFailed, err.Error())
				return
			}
		}
		s.notifyDone(id)
		return
	}
	r := &run{d: d}
	if err := s.execute(ctx, r); err != nil {
		if r.d.State.Terminal() {
			return
		}
		reason := err.Error()
		if ctx.Err() != nil {
			// The server is shutting down: leave the deployment unfinished so
			// the next start recovers it from its persisted step.
			s.log.Warn("deployment interrupted by shutdown", "deployment", id, "step", r.d.Step)
			s.notifyDone(id)
			return
		}
		s.finish(ctx, r, core.StateFailed, reason)
	}
}

func (s *Service) execute(ctx context.Context, r *run) error {
	d := &r.d
	if err := s.step(ctx, r, core.StepLock, fmt.Sprintf("locking %s/%s", d.App, d.Env)); err != nil {
		return err
	}
	if err := s.cfg.Store.TryLock(ctx, d.App, d.Env, s.lockHolder(*d), DefaultLockTTL); err != nil {
		return err
	}
	r.locked = true
	// A single step may outlast the lock (a long verification window):
	// renew it in the background until the deployment ends.
	renewCtx, stopRenew := context.WithCancel(ctx)
	renewed := make(chan struct{})
	held := *d
	go func() {
		defer close(renewed)
		s.renewLock(renewCtx, held)
	}()
	r.stopRenew = func() { stopRenew(); <-renewed }
	defer r.stopRenewing()
	var err error
	if r.rel, err = s.cfg.Store.GetRelease(ctx, d.App, d.Release); err != nil {
		return err
	}
	if r.art, r.m, err = s.manifestFor(ctx, d.App, r.rel); err != nil {
		return err
	}
	var ok bool
	if r.env, ok = r.m.Env(d.Env); !ok {
		return fmt.Errorf("env %q is not in %s of %s", d.Env, manifest.FileName, r.rel.Label())
	}
	if r.state, err = s.cfg.Store.GetEnvState(ctx, d.App, d.Env); err != nil {
		return err
	}
	r.state.App, r.state.Env = d.App, d.Env
	if degraded := s.degraded(ctx, r.state); degraded != "" {
		// The live colour lost instances: deploying, even the live release,
		// replaces it whole.
		s.emit(ctx, event(*d, core.EventDeployInfo, fmt.Sprintf("%s/%s is degraded (%s): this deployment replaces the live colour", d.App, d.Env, degraded)))
	} else if live := r.state.LiveRelease(); live == d.Release {
		s.finish(ctx, r, core.StateNoop, r.rel.Label()+" is already live")
		return nil
	} else if live > 0 && shipsCommit(d.Kind) {
		// A deployment queued behind another of the same commit and config.
		if lr, err := s.cfg.Store.GetRelease(ctx, d.App, live); err == nil && lr.SHA == r.rel.SHA && lr.ConfigVersion == r.rel.ConfigVersion {
			s.finish(ctx, r, core.StateNoop, fmt.Sprintf("%s is already live with the same commit and config", lr.Label()))
			return nil
		}
	}
	d.PreviousRelease = r.state.LiveRelease()

	colour := core.Blue
	if r.state.Live != "" {
		colour = r.state.Live.Other()
	}
	d.Colour = colour
	idle := r.state.Slot(colour)
	warm := idle.Release == d.Release && len(idle.Instances) > 0 && (idle.State == core.SlotStandby || idle.State == core.SlotLive)

	if warm {
		if err := s.step(ctx, r, core.StepHealth, fmt.Sprintf("%s is warm in %s: checking its %d instance(s)", r.rel.Label(), colour, len(idle.Instances))); err != nil {
			return err
		}
		if err := s.checkOnce(ctx, r.m, idle.Instances); err != nil {
			// Warm but unhealthy: start it cold instead.
			s.emit(ctx, event(*d, core.EventDeployInfo, fmt.Sprintf("warm %s instances failed a health check (%v): starting cold", colour, err)))
			warm = false
		} else if len(r.m.Smoke) > 0 {
			if err := s.step(ctx, r, core.StepSmoke, fmt.Sprintf("running %d smoke check(s) against warm %s", len(r.m.Smoke), colour)); err != nil {
				return err
			}
			if err := s.smoke(ctx, r.m, idle.Instances); err != nil {
				s.emit(ctx, event(*d, core.EventDeployInfo, fmt.Sprintf("warm %s instances failed a smoke check (%v): starting cold", colour, err)))
				warm = false
			}
		}
	}
	if !warm {
		// The migration runs first: if it fails, nothing else has changed.
		if r.m.Migrate != nil && newCode(d.Kind) {
			if err := s.step(ctx, r, core.StepMigrate, "running migration: "+joinArgv(r.m.Migrate.Command)); err != nil {
				return err
			}
			if err := s.migrate(ctx, r); err != nil {
				return fmt.Errorf("migration failed: %w", err)
			}
		}
		if idle.State == core.SlotFailed && len(idle.Instances) > 0 {
			if err := s.checkNotHeld(ctx, r, colour); err != nil {
				return err
			}
			s.emit(ctx, event(*d, core.EventDeployInfo, fmt.Sprintf("replacing the failed %s colour (#%d) kept for investigation", colour, idle.Release)))
		}
		if err := s.stopSlot(ctx, &r.state, colour, r.m.StopGrace); err != nil {
			return fmt.Errorf("clear %s colour: %w", colour, err)
		}
		if err := s.step(ctx, r, core.StepStart, fmt.Sprintf("starting %d instance(s) of %s in %s", r.env.Instances, r.rel.Label(), colour)); err != nil {
			return err
		}
		insts, err := s.startSlot(ctx, r, colour)
		if err != nil {
			return err
		}
		if err := s.step(ctx, r, core.StepHealth, fmt.Sprintf("waiting for %s on %s (deadline %s)", r.m.Health.Path, addrs(insts), r.m.Health.Deadline)); err != nil {
			return err
		}
		if err := s.waitHealthy(ctx, r.m, insts); err != nil {
			s.abandonSlot(ctx, r, colour)
			return fmt.Errorf("health gate: %w", err)
		}
		if len(r.m.Smoke) > 0 {
			if err := s.step(ctx, r, core.StepSmoke, fmt.Sprintf("running %d smoke check(s) against %s", len(r.m.Smoke), colour)); err != nil {
				return err
			}
			if err := s.smoke(ctx, r.m, insts); err != nil {
				s.abandonSlot(ctx, r, colour)
				return fmt.Errorf("smoke check: %w", err)
			}
		}
	}
	return s.switchAndVerify(ctx, r, colour)
}

// switchAndVerify moves traffic to colour, watches it, and either marks the
// release live or switches back.
func (s *Service) switchAndVerify(ctx context.Context, r *run, colour core.Colour) error {
	d := &r.d
	slot := r.state.Slot(colour)
	old := r.state.Live
	if err := s.step(ctx, r, core.StepSwitch, fmt.Sprintf("switching %s to %s (%s)", d.Env, colour, r.rel.Label())); err != nil {
		return err
	}
	if err := s.route(ctx, routeSpec(d.App, r.env, r.m, colour, *slot)); err != nil {
		s.abandonSlot(ctx, r, colour)
		return fmt.Errorf("switch: %w", err)
	}
	now := s.now()
	d.SwitchedAt = &now
	r.state.Live = colour
	slot.State, slot.Until, slot.HeldUntil = core.SlotLive, time.Time{}, time.Time{}
	if old != "" && old != colour {
		prev := r.state.Slot(old)
		if len(prev.Instances) > 0 {
			prev.State = core.SlotStandby
			prev.Until = now.Add(r.m.StandbyFor)
		}
	}
	if err := s.putState(ctx, &r.state); err != nil {
		return err
	}
	s.emit(ctx, event(*d, core.EventDeploySwitched, fmt.Sprintf("traffic in %s now goes to %s (%s)", d.Env, colour, r.rel.Label())))

	if err := s.step(ctx, r, core.StepVerify, fmt.Sprintf("verifying live traffic for %s (max error rate %.2f%%)", r.m.Verify.For, r.m.Verify.MaxErrorRate*100)); err != nil {
		return err
	}
	if err := s.verify(ctx, r, slot.Instances); err != nil {
		if ctx.Err() != nil {
			return err
		}
		return s.switchBack(ctx, r, colour, old, err.Error(), true)
	}
	if err := s.step(ctx, r, core.StepLive, fmt.Sprintf("%s is live in %s", r.rel.Label(), d.Env)); err != nil {
		return err
	}
	s.finish(ctx, r, core.StateSucceeded, "")
	return nil
}

// switchBack returns traffic to the previous colour after a failed
// verification and keeps the failed colour for investigation.
// A switch-back because verification failed also locks the environment
// (lock); one by a recovery after a restart does not: a restart says
// nothing against the release.
func (s *Service) switchBack(ctx context.Context, r *run, failed, old core.Colour, reason string, lock bool) error {
	d := &r.d
	prev := r.state.Slot(old)
	if old == "" || old == failed || len(prev.Instances) == 0 {
		s.finish(ctx, r, core.StateFailed, "verification failed ("+reason+") and there is no previous release to switch back to; "+r.rel.Label()+" keeps serving")
		return nil
	}
	if err := s.step(ctx, r, core.StepSwitchBack, fmt.Sprintf("verification failed (%s): switching back to %s (#%d)", reason, old, prev.Release)); err != nil {
		return err
	}
	if err := s.route(context.WithoutCancel(ctx), routeSpec(d.App, r.env, r.m, old, *prev)); err != nil {
		s.finish(ctx, r, core.StateFailed, fmt.Sprintf("verification failed (%s) and switching back failed: %v", reason, err))
		return nil
	}
	now := s.now()
	r.state.Live = old
	prev.State, prev.Until = core.SlotLive, time.Time{}
	fs := r.state.Slot(failed)
	fs.State = core.SlotFailed
	fs.Until = now.Add(r.m.InvestigateFor)
	if err := s.putState(ctx, &r.state); err != nil {
		s.log.Error("persist state after switch back", "deployment", d.ID, "err", err)
	}
	s.emit(ctx, event(*d, core.EventDeploySwitchedBack, fmt.Sprintf("traffic back on %s (#%d); failed %s kept for investigation at %s until %s", old, prev.Release, failed, addrs(fs.Instances), fs.Until.Format(time.RFC3339))))
	if lock {
		s.lockOnSwitchBack(ctx, *d, reason)
	}
	s.finish(ctx, r, core.StateRolledBack, reason)
	return nil
}

// verify watches the live error rate and re-runs the smoke checks against
// the new instances for the verification window.
func (s *Service) verify(ctx context.Context, r *run, insts []core.Instance) error {
	v := r.m.Verify
	if v.For <= 0 {
		return nil
	}
	svc := serviceName(r.d.App, r.d.Env)
	base, err := s.stats(ctx, svc)
	if err != nil {
		return fmt.Errorf("read traffic counters: %w", err)
	}
	deadline := time.NewTimer(v.For)
	defer deadline.Stop()
	tick := time.NewTicker(verifySampleInterval)
	defer tick.Stop()
	probeEvery := r.m.Health.Interval
	nextProbe := time.Now().Add(probeEvery)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return s.errorRate(ctx, svc, base, v, true)
		case <-tick.C:
			if err := s.errorRate(ctx, svc, base, v, false); err != nil {
				return err
			}
			if time.Now().After(nextProbe) {
				nextProbe = time.Now().Add(probeEvery)
				if err := s.checkOnce(ctx, r.m, insts); err != nil {
					return fmt.Errorf("health check after switch: %w", err)
				}
				if err := s.smoke(ctx, r.m, insts); err != nil {
					return fmt.Errorf("smoke check after switch: %w", err)
				}
			}
		}
	}
}

func (s *Service) errorRate(ctx context.Context, svc string, base RouteStats, v manifest.Verify, final bool) error {
	cur, err := s.stats(ctx, svc)
	if err != nil {
		return fmt.Errorf("read traffic counters: %w", err)
	}
	reqs := cur.Requests - base.Requests
	bad := (cur.Errors5xx - base.Errors5xx) + (cur.ConnErrors - base.ConnErrors)
	min := uint64(v.MinRequests)
	if min == 0 {
		min = 10
	}
	if reqs < min {
		return nil
	}
	rate := float64(bad) / float64(reqs)
	if rate > v.MaxErrorRate {
		return fmt.Errorf("error rate %.1f%% (%d of %d requests) is above %.1f%%", rate*100, bad, reqs, v.MaxErrorRate*100)
	}
	return nil
}

// putState writes st with a compare-and-swap on its version. The queue is
// the only writer of an environment's slots; a hold is the one change made
// beside it, so on a conflict the stored hold is kept and the write is
// tried again on the stored version.
func (s *Service) putState(ctx context.Context, st *core.EnvState) error {
	ctx = context.WithoutCancel(ctx)
	st.UpdatedAt = s.now()
	for attempt := 0; ; attempt++ {
		stored, err := s.cfg.Store.PutEnvState(ctx, *st)
		if err == nil {
			st.Version = stored.Version
			return nil
		}
		if !errors.Is(err, core.ErrConflict) || attempt >= 5 {
			return fmt.Errorf("persist state of %s/%s: %w", st.App, st.Env, err)
		}
		fresh, ferr := s.cfg.Store.GetEnvState(ctx, st.App, st.Env)
		if ferr != nil {
			return fmt.Errorf("persist state of %s/%s: %w", st.App, st.Env, ferr)
		}
		for c, fs := range fresh.Slots {
			if sl := st.Slots[c]; sl != nil && fs != nil && sl.Release == fs.Release && fs.HeldUntil.After(sl.HeldUntil) {
				sl.HeldUntil = fs.HeldUntil
			}
		}
		st.Version = fresh.Version
	}
}

// route calls the router with a bound on how long it may take: a wedged
// proxy fails the step instead of stalling the environment.
func (s *Service) route(ctx context.Context, spec RouteSpec) error {
	ctx, cancel := context.WithTimeout(ctx, routerTimeout)
	defer cancel()
	return s.cfg.Router.Route(ctx, spec)
}

func (s *Service) stats(ctx context.Context, service string) (RouteStats, error) {
	ctx, cancel := context.WithTimeout(ctx, routerTimeout)
	defer cancel()
	return s.cfg.Router.Stats(ctx, service)
}

// startSlot records the slot as starting (so a crash leaves a trace), starts
// the instances and records them.
func (s *Service) startSlot(ctx context.Context, r *run, colour core.Colour) ([]core.Instance, error) {
	slot := r.state.Slot(colour)
	slot.State, slot.Release, slot.Instances, slot.Until, slot.HeldUntil = core.SlotStarting, r.d.Release, nil, time.Time{}, time.Time{}
	if err := s.putState(ctx, &r.state); err != nil {
		return nil, err
	}
	spec, err := s.groupSpec(ctx, r, colour)
	if err != nil {
		return nil, err
	}
	insts, err := s.cfg.Driver.Start(ctx, spec)
	if err != nil {
		slot.State, slot.Release = core.SlotEmpty, 0
		_ = s.putState(ctx, &r.state)
		return nil, fmt.Errorf("start %s: %w", colour, err)
	}
	slot.Instances = insts
	for _, in := range insts {
		r.d.Instances = append(r.d.Instances, in.ID) // recorded with the next step: their logs outlive them
	}
	if err := s.putState(ctx, &r.state); err != nil {
		_ = s.cfg.Driver.Stop(context.WithoutCancel(ctx), insts, r.m.StopGrace)
		return nil, err
	}
	return insts, nil
}

func (s *Service) groupSpec(ctx context.Context, r *run, colour core.Colour) (core.GroupSpec, error) {
	environ := map[string]string{}
	for k, v := range r.m.Run.Env {
		environ[k] = v
	}
	for k, v := range r.env.Env {
		environ[k] = v
	}
	var secrets map[string]string
	// Config version 0 means the release was made before any config: it
	// must not pick up a later version (GetConfig's 0 means "latest").
	if r.rel.ConfigVersion > 0 {
		cfgv, err := s.cfg.Store.GetConfig(ctx, r.d.App, r.d.Env, r.rel.ConfigVersion)
		if err != nil && !errors.Is(err, core.ErrNotFound) {
			return core.GroupSpec{}, fmt.Errorf("config v%d: %w", r.rel.ConfigVersion, err)
		}
		for k, v := range cfgv.Vars {
			environ[k] = v
		}
		if secrets, err = s.cfg.Store.GetConfigSecrets(ctx, r.d.App, r.d.Env, r.rel.ConfigVersion); err != nil {
			return core.GroupSpec{}, fmt.Errorf("config secrets v%d: %w", r.rel.ConfigVersion, err)
		}
	}
	environ["CUTOVER_SHA"] = r.rel.SHA
	return core.GroupSpec{
		App: r.d.App, Env: r.d.Env, Colour: colour, Release: r.d.Release,
		Count: r.env.Instances, Artifact: r.art.Ref, Command: r.m.Run.Command,
		Environ: environ, Secrets: secrets, Runtime: r.m.RuntimeOptions(r.env),
	}, nil
}

// checkNotHeld refuses to replace a failed colour that someone holds for
// investigation, unless the deployment says so. It reads the stored
// state: a hold may have been taken while this deployment ran.
func (s *Service) checkNotHeld(ctx context.Context, r *run, colour core.Colour) error {
	if r.d.ReplaceHeld {
		return nil
	}
	fresh, err := s.cfg.Store.GetEnvState(ctx, r.d.App, r.d.Env)
	if err != nil {
		return err
	}
	sl := fresh.Slots[colour]
	if sl == nil || sl.State != core.SlotFailed || !s.now().Before(sl.HeldUntil) {
		return nil
	}
	return fmt.Errorf("%w: the failed %s colour (#%d) is held for investigation until %s; deploy again with --replace-held to replace it, or wait",
		core.ErrLocked, colour, sl.Release, sl.HeldUntil.Format(time.RFC3339))
}

// abandonSlot stops a colour that failed before the switch.
func (s *Service) abandonSlot(ctx context.Context, r *run, colour core.Colour) {
	if err := s.stopSlot(context.WithoutCancel(ctx), &r.state, colour, r.m.StopGrace); err != nil {
		s.log.Error("stop failed colour", "app", r.d.App, "env", r.d.Env, "colour", colour, "err", err)
	}
}

// stopSlot stops a colour's instances and records it empty.
func (s *Service) stopSlot(ctx context.Context, st *core.EnvState, colour core.Colour, grace time.Duration) error {
	slot := st.Slot(colour)
	if len(slot.Instances) > 0 {
		if err := s.cfg.Driver.Stop(ctx, slot.Instances, grace); err != nil {
			return err
		}
	}
	*slot = core.Slot{Colour: colour, State: core.SlotEmpty}
	return s.putState(ctx, st)
}

func routeSpec(app string, env manifest.Environment, m *manifest.Manifest, colour core.Colour, slot core.Slot) RouteSpec {
	return RouteSpec{Service: serviceName(app, env.Name), Listen: env.Listen, Host: env.Host, HealthPath: m.Health.Path,
		Colour: colour, Release: slot.Release, Targets: addrs(slot.Instances)}
}

func addrs(insts []core.Instance) []string {
	out := make([]string, 0, len(insts))
	for _, in := range insts {
		if in.Addr != "" {
			out = append(out, in.Addr)
		}
	}
	return out
}

func joinArgv(argv []string) string {
	out := ""
	for i, a := range argv {
		if i > 0 {
			out += " "
		}
		out += strconv.Quote(a)
	}
	return out
}

// shipsCommit reports whether a kind ships a commit asked for by name
// (deploy, promote, hotfix, recycle), as opposed to an existing release.
func shipsCommit(k core.DeploymentKind) bool {
	return k == core.KindDeploy || k == core.KindPromote || k == core.KindHotfix || k == core.KindRecycle
}

// newCode reports whether a kind may bring code the environment has not
// run (its migration runs first); a recycle brings only config.
func newCode(k core.DeploymentKind) bool {
	return k == core.KindDeploy || k == core.KindPromote || k == core.KindHotfix
}
