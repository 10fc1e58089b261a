package deploy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cutover/cutover/internal/core"
)

// RollbackRequest asks to return an environment to an earlier release.
// With neither To nor Steps set it goes back one step.
type RollbackRequest struct {
	App, Env    string
	To          int // a release number
	Steps       int // how many distinct earlier live releases to go back
	NoWait      bool
	RequestedBy string
	// KeepConfig rolls back the code only: the target's artifact with the
	// live release's config (a new release).
	KeepConfig bool
}

// Rollback records and queues a rollback deployment. It is an instant switch
// when the target is still warm in the standby colour, a cold start
// otherwise.
func (s *Service) Rollback(ctx context.Context, req RollbackRequest) (core.Deployment, error) {
	if err := core.ValidateName("app", req.App); err != nil {
		return core.Deployment{}, err
	}
	if err := core.ValidateName("env", req.Env); err != nil {
		return core.Deployment{}, err
	}
	if req.To < 0 || req.Steps < 0 {
		return core.Deployment{}, fmt.Errorf("%w: --to and --steps must be positive", core.ErrInvalid)
	}
	if req.To > 0 && req.Steps > 0 {
		return core.Deployment{}, fmt.Errorf("%w: give --to or --steps, not both", core.ErrInvalid)
	}
	if _, err := s.cfg.Store.GetApp(ctx, req.App); err != nil {
		return core.Deployment{}, fmt.Errorf("app %q: %w", req.App, err)
	}
	target := req.To
	if target == 0 {
		steps := req.Steps
		if steps == 0 {
			steps = 1
		}
		earlier, err := s.earlierReleases(ctx, req.App, req.Env)
		if err != nil {
			return core.Deployment{}, err
		}
		if len(earlier) < steps {
			return core.Deployment{}, fmt.Errorf("%w: %s/%s has %d earlier live release(s); cannot go back %d step(s)", core.ErrInvalid, req.App, req.Env, len(earlier), steps)
		}
		target = earlier[steps-1]
	}
	targetRel, err := s.cfg.Store.GetRelease(ctx, req.App, target)
	if err != nil {
		return core.Deployment{}, err // the store's error names the release
	}
	st, err := s.cfg.Store.GetEnvState(ctx, req.App, req.Env)
	if err != nil {
		return core.Deployment{}, err
	}
	var configNote, configChange string
	if live := st.LiveRelease(); live > 0 && live != target {
		liveRel, err := s.cfg.Store.GetRelease(ctx, req.App, live)
		if err != nil {
			return core.Deployment{}, err
		}
		if req.KeepConfig && targetRel.ConfigVersion != liveRel.ConfigVersion {
			// The code of the target with the config that is live now.
			if targetRel.Env != req.Env {
				return core.Deployment{}, fmt.Errorf("%w: release %s was made for environment %q, not %q", core.ErrInvalid, targetRel.Label(), targetRel.Env, req.Env)
			}
			targetRel, err = s.cfg.Store.CreateRelease(ctx, core.Release{App: req.App, Env: req.Env, SHA: targetRel.SHA, Digest: targetRel.Digest,
				ConfigVersion: liveRel.ConfigVersion, CreatedAt: s.now()})
			if err != nil {
				return core.Deployment{}, fmt.Errorf("record release: %w", err)
			}
			target = targetRel.Number
		} else if change, err := s.configChange(ctx, req.App, req.Env, liveRel.ConfigVersion, targetRel.ConfigVersion); err == nil && !change.Empty() {
			// Going back to a release goes back to its config too: say so.
			configNote = fmt.Sprintf("rolling %s back to #%d also changes its config (v%d -> v%d): %s; roll back with --keep-config to keep today's config",
				req.Env, target, liveRel.ConfigVersion, targetRel.ConfigVersion, change)
			configChange = change.String()
		}
	}
	d, err := s.Deploy(ctx, DeployRequest{App: req.App, Env: req.Env, Release: target, NoWait: req.NoWait, RequestedBy: req.RequestedBy, kind: core.KindRollback})
	if err == nil && configNote != "" {
		e := event(d, core.EventDeployInfo, configNote)
		e.Reason = configChange
		s.emit(ctx, e)
	}
	return d, err
}

// configChange says which keys differ between two config versions of an
// environment (version 0: no config), secrets by name only.
func (s *Service) configChange(ctx context.Context, app, env string, from, to int) (core.ConfigDiff, error) {
	read := func(v int) (map[string]string, map[string]string, error) {
		if v == 0 {
			return nil, nil, nil
		}
		cv, err := s.cfg.Store.GetConfig(ctx, app, env, v)
		if err != nil {
			return nil, nil, err
		}
		sec, err := s.cfg.Store.GetConfigSecrets(ctx, app, env, v)
		return cv.Vars, sec, err
	}
	ov, os, err := read(from)
	if err != nil {
		return core.ConfigDiff{}, err
	}
	nv, ns, err := read(to)
	if err != nil {
		return core.ConfigDiff{}, err
	}
	return core.DiffConfig(ov, os, nv, ns), nil
}

// earlierReleases lists the releases a rollback may go back to, most
// recent first, without repeats: those that were live in env before the
// current one and have not themselves been rolled back from since (so a
// second rollback goes further back, never forward to the release the
// first one left).
func (s *Service) earlierReleases(ctx context.Context, app, env string) ([]int, error) {
	st, err := s.cfg.Store.GetEnvState(ctx, app, env)
	if err != nil {
		return nil, err
	}
	live := st.LiveRelease()
	seen := map[int]bool{live: true}
	rolledBackFrom := map[int]bool{}
	var out []int
	var before int64
	for {
		ds, err := s.cfg.Store.ListDeployments(ctx, app, env, before, 500)
		if err != nil {
			return nil, fmt.Errorf("history of %s/%s: %w", app, env, err)
		}
		for _, d := range ds { // newest first
			if d.State != core.StateSucceeded {
				continue
			}
			// A rollback left its previous release behind.
			if d.Kind == core.KindRollback && d.Release != d.PreviousRelease && !seen[d.PreviousRelease] {
				rolledBackFrom[d.PreviousRelease] = true
			}
			if !seen[d.Release] && !rolledBackFrom[d.Release] {
				out = append(out, d.Release)
			}
			seen[d.Release] = true
		}
		if len(ds) < 500 || len(out) >= 100 {
			return out, nil
		}
		before = ds[len(ds)-1].ID
	}
}

// Confirm marks the live release as verified by a person (the "everything
// looks good" button). The standby colour is then brought to the same
// release or scaled in, as the manifest's on_confirm says.
func (s *Service) Confirm(ctx context.Context, app, env, by string) (core.Deployment, error) {
	st, err := s.liveState(ctx, app, env)
	if err != nil {
		return core.Deployment{}, err
	}
	q, err := s.queue(app, env)
	if err != nil {
		return core.Deployment{}, err
	}
	live := st.LiveRelease()
	now := s.now()
	d, err := s.cfg.Store.CreateDeployment(ctx, core.Deployment{
		App: app, Env: env, Kind: core.KindConfirm, Release: live, PreviousRelease: live,
		State: core.StatePending, Step: core.StepQueued, RequestedBy: by, CreatedAt: now, UpdatedAt: now,
	})
	if err != nil {
		return core.Deployment{}, err
	}
	s.emit(ctx, event(d, core.EventDeployQueued, fmt.Sprintf("confirm of #%d in %s queued", live, env)))
	q.push(task{holder: holderOf(d), key: holderOf(d), run: func(ctx context.Context) { s.runConfirm(ctx, d) }}, false)
	return d, nil
}

func (s *Service) runConfirm(ctx context.Context, d core.Deployment) {
	d, err := s.transition(ctx, d.ID, func(d *core.Deployment) error { d.State = core.StateRunning; return nil })
	if err != nil {
		s.notifyDone(d.ID)
		return
	}
	r := &run{d: d}
	err = func() error {
		st, err := s.cfg.Store.GetEnvState(ctx, d.App, d.Env)
		if err != nil {
			return err
		}
		r.state = st
		if st.LiveRelease() != d.Release {
			return fmt.Errorf("#%d is no longer live (#%d is)", d.Release, st.LiveRelease())
		}
		if r.rel, err = s.cfg.Store.GetRelease(ctx, d.App, d.Release); err != nil {
			return err
		}
		if r.art, r.m, err = s.manifestFor(ctx, d.App, r.rel); err != nil {
			return err
		}
		r.env, _ = r.m.Env(d.Env)
		r.state.Verified = d.Release
		idle := st.Live.Other()
		r.d.Colour = idle
		if err := s.step(ctx, r, core.StepStart, fmt.Sprintf("#%d confirmed; standby colour %s: %s", d.Release, idle, r.m.OnConfirm)); err != nil {
			return err
		}
		if r.m.OnConfirm == "scale_in" {
			return s.stopSlot(ctx, &r.state, idle, r.m.StopGrace)
		}
		slot := r.state.Slot(idle)
		if slot.Release == d.Release && len(slot.Instances) > 0 {
			slot.State, slot.Until = core.SlotStandby, time.Time{}
			return s.putState(ctx, &r.state)
		}
		if err := s.stopSlot(ctx, &r.state, idle, r.m.StopGrace); err != nil {
			return err
		}
		insts, err := s.startSlot(ctx, r, idle)
		if err != nil {
			return err
		}
		if err := s.waitHealthy(ctx, r.m, insts); err != nil {
			s.abandonSlot(ctx, r, idle)
			return err
		}
		slot = r.state.Slot(idle)
		slot.State, slot.Until = core.SlotStandby, time.Time{} // a confirmed standby stays warm
		return s.putState(ctx, &r.state)
	}()
	if err != nil {
		if ctx.Err() != nil {
			s.notifyDone(d.ID)
			return
		}
		s.finish(ctx, r, core.StateFailed, err.Error())
		return
	}
	s.finish(ctx, r, core.StateSucceeded, "")
}

// Hold postpones the automatic revert of a failed colour so developers can
// keep investigating it. It is a compare-and-swap on the environment's
// state, so it neither waits for a running deployment nor is overwritten
// by one (the deployment's own write keeps the stored hold).
func (s *Service) Hold(ctx context.Context, app, env string, d time.Duration, by string) (core.EnvState, error) {
	if d <= 0 || d > 7*24*time.Hour {
		return core.EnvState{}, fmt.Errorf("%w: --for %s: want a duration between 1s and 168h", core.ErrInvalid, d)
	}
	if _, err := s.activation(); err != nil {
		return core.EnvState{}, err
	}
	for attempt := 0; ; attempt++ {
		st, err := s.liveState(ctx, app, env)
		if err != nil {
			return core.EnvState{}, err
		}
		var failed *core.Slot
		for _, sl := range st.Slots {
			if sl.State == core.SlotFailed {
				failed = sl
			}
		}
		if failed == nil {
			return core.EnvState{}, fmt.Errorf("%w: %s/%s has no failed colour to hold", core.ErrInvalid, app, env)
		}
		failed.HeldUntil = s.now().Add(d)
		st.UpdatedAt = s.now()
		stored, err := s.cfg.Store.PutEnvState(ctx, st)
		if errors.Is(err, core.ErrConflict) && attempt < 5 {
			continue // a deployment wrote in between: hold what is there now
		}
		if err != nil {
			return core.EnvState{}, fmt.Errorf("hold %s/%s: %w", app, env, err)
		}
		s.emit(ctx, core.Event{App: app, Env: env, Type: core.EventColourHeld, Release: failed.Release, Actor: by,
			Message: fmt.Sprintf("failed %s (#%d) held for investigation until %s by %s", failed.Colour, failed.Release, failed.HeldUntil.Format(time.RFC3339), orSomeone(by))})
		return stored, nil
	}
}

func orSomeone(by string) string {
	if by == "" {
		return "an operator"
	}
	return by
}

func (s *Service) liveState(ctx context.Context, app, env string) (core.EnvState, error) {
	if err := core.ValidateName("app", app); err != nil {
		return core.EnvState{}, err
	}
	if err := core.ValidateName("env", env); err != nil {
		return core.EnvState{}, err
	}
	if _, err := s.cfg.Store.GetApp(ctx, app); err != nil {
		return core.EnvState{}, fmt.Errorf("app %q: %w", app, err)
	}
	st, err := s.cfg.Store.GetEnvState(ctx, app, env)
	if err != nil {
		return core.EnvState{}, err
	}
	if st.LiveRelease() == 0 {
		return core.EnvState{}, fmt.Errorf("%w: nothing is live in %s/%s", core.ErrNotFound, app, env)
	}
	st.App, st.Env = app, env
	return st, nil
}

// tickLoop scales in expired standby colours and reverts failed colours
// whose investigation time is over.
func (s *Service) tickLoop(a *activation) {
	defer a.wg.Done()
	t := time.NewTicker(s.cfg.TickInterval)
	defer t.Stop()
	for {
		select {
		case <-a.ctx.Done():
			return
		case <-t.C:
			s.Tick(a.ctx)
		}
	}
}

// Tick runs one pass of the lifecycle checks. The loop calls it every
// TickInterval; tests may call it directly.
func (s *Service) Tick(ctx context.Context) {
	if !s.Active() {
		return
	}
	s.evaluateWaiting(ctx)
	s.maybeCollect(ctx)
	apps, err := s.cfg.Store.ListApps(ctx)
	if err != nil {
		s.log.Error("tick: list apps", "err", err)
		return
	}
	now := s.now()
	for _, app := range apps {
		s.pollAutoDeploy(ctx, app)
		// Environments with state are the ones that ever had a deploy.
		sts, err := s.cfg.Store.ListEnvStates(ctx, app.Name)
		if err != nil {
			s.log.Error("tick: list environments", "app", app.Name, "err", err)
			continue
		}
		for _, st := range sts {
			env := st.Env
			st.App = app.Name
			s.mu.Lock()
			_, unrouted := s.unrouted[envKey(app.Name, env)]
			s.mu.Unlock()
			if unrouted {
				s.reroute(app.Name, env)
			}
			s.supervise(ctx, st)
			for _, c := range []core.Colour{core.Blue, core.Green} {
				sl := st.Slots[c]
				if sl == nil || sl.Until.IsZero() || now.Before(sl.Until) || now.Before(sl.HeldUntil) {
					continue
				}
				switch sl.State {
				case core.SlotStandby:
					s.queueScaleIn(app.Name, env, c, sl.Release)
				case core.SlotFailed:
					s.queueRevert(app.Name, env, c, sl.Release)
				}
			}
		}
	}
}

// queueScaleIn stops a standby colour once its time is up, in the
// environment's queue so it never races a deploy.
func (s *Service) queueScaleIn(app, env string, c core.Colour, release int) {
	q, err := s.queue(app, env)
	if err != nil {
		return
	}
	key := fmt.Sprintf("scale-in of %s #%d", c, release)
	q.push(task{holder: key, key: key, run: func(ctx context.Context) {
		st, err := s.cfg.Store.GetEnvState(ctx, app, env)
		if err != nil {
			return
		}
		sl := st.Slots[c]
		if sl == nil || sl.State != core.SlotStandby || sl.Release != release || sl.Until.IsZero() || s.now().Before(sl.Until) {
			return // changed since it was queued
		}
		st.App, st.Env = app, env
		if err := s.stopSlot(ctx, &st, c, s.graceFor(ctx, app, release)); err != nil {
			s.log.Error("scale in standby", "app", app, "env", env, "colour", c, "err", err)
			return
		}
		s.emit(ctx, core.Event{App: app, Env: env, Type: core.EventColourScaledIn, Release: release, Actor: "cutover", Message: fmt.Sprintf("standby %s (#%d) scaled in after its standby time", c, release)})
	}}, false)
}

// queueRevert brings a failed colour back to the last good release after its
// investigation time, as a recorded deployment of kind revert. The colour
// stays without traffic; it becomes a warm standby of the live release.
func (s *Service) queueRevert(app, env string, c core.Colour, failedRelease int) {
	q, err := s.queue(app, env)
	if err != nil {
		return
	}
	key := fmt.Sprintf("revert of %s #%d", c, failedRelease)
	q.push(task{holder: key, key: key, run: func(ctx context.Context) {
		st, err := s.cfg.Store.GetEnvState(ctx, app, env)
		if err != nil {
			return
		}
		sl := st.Slots[c]
		if sl == nil || sl.State != core.SlotFailed || sl.Release != failedRelease || s.now().Before(sl.Until) || s.now().Before(sl.HeldUntil) {
			return
		}
		live := st.LiveRelease()
		now := s.now()
		d, err := s.cfg.Store.CreateDeployment(ctx, core.Deployment{
			App: app, Env: env, Kind: core.KindRevert, Release: live, PreviousRelease: live, Colour: c,
			State: core.StateRunning, Step: core.StepStart, RequestedBy: "cutover (investigation time over)",
			CreatedAt: now, UpdatedAt: now,
		})
		if err != nil {
			return
		}
		r := &run{d: d, state: st}
		r.state.App, r.state.Env = app, env
		err = func() error {
			if r.rel, err = s.cfg.Store.GetRelease(ctx, app, live); err != nil {
				return err
			}
			if r.art, r.m, err = s.manifestFor(ctx, app, r.rel); err != nil {
				return err
			}
			r.env, _ = r.m.Env(env)
			if err := s.step(ctx, r, core.StepStart, fmt.Sprintf("reverting failed %s (#%d) to #%d", c, failedRelease, live)); err != nil {
				return err
			}
			if err := s.stopSlot(ctx, &r.state, c, r.m.StopGrace); err != nil {
				return err
			}
			insts, err := s.startSlot(ctx, r, c)
			if err != nil {
				return err
			}
			if err := s.waitHealthy(ctx, r.m, insts); err != nil {
				s.abandonSlot(ctx, r, c)
				return err
			}
			slot := r.state.Slot(c)
			slot.State, slot.Until = core.SlotStandby, s.now().Add(r.m.StandbyFor)
			return s.putState(ctx, &r.state)
		}()
		if err != nil {
			s.finish(ctx, r, core.StateFailed, "revert: "+err.Error())
			return
		}
		s.finish(ctx, r, core.StateSucceeded, "")
	}}, false)
}

func (s *Service) graceFor(ctx context.Context, app string, release int) time.Duration {
	rel, err := s.cfg.Store.GetRelease(ctx, app, release)
	if err != nil {
		return 10 * time.Second
	}
	_, m, err := s.manifestFor(ctx, app, rel)
	if err != nil {
		return 10 * time.Second
	}
	return m.StopGrace
}

// recover finishes what a previous server left: deployments still running
// are rolled back to the release that was live before them (or finished if
// they had already been verified), instances nobody refers to are stopped,
// and every live colour is routed again.
func (s *Service) recover(ctx context.Context) error {
	unfinished, err := s.cfg.Store.UnfinishedDeployments(ctx)
	if err != nil {
		return err
	}
	for _, d := range unfinished {
		if err := s.recoverDeployment(ctx, d); err != nil {
			s.log.Error("recover deployment", "deployment", d.ID, "err", err)
		}
	}
	return s.reconcile(ctx)
}

func (s *Service) recoverDeployment(ctx context.Context, d core.Deployment) error {
	switch {
	case d.State == core.StateWaiting:
		return nil // the tick evaluates it again
	case d.Kind == core.KindStop:
		// Every step of a stop can run again: finish it.
		if holder, herr := s.cfg.Store.LockHolder(ctx, d.App, d.Env); herr == nil && strings.HasPrefix(holder, holderOf(d)+" on ") {
			_ = s.cfg.Store.Unlock(ctx, d.App, d.Env, holder)
		}
		q, err := s.queue(d.App, d.Env)
		if err != nil {
			return err
		}
		q.push(task{holder: holderOf(d), key: holderOf(d), run: func(ctx context.Context) { s.runStop(ctx, d.ID) }}, false)
		return nil
	case d.State == core.StatePending && d.Step != core.StepQueued && d.Kind != core.KindConfirm:
		// Recorded but not yet queued (gates or build): prepare it again.
		// A build is once per SHA, so one that finished is not redone.
		s.amu.Lock()
		s.addPreparing(d)
		s.amu.Unlock()
		err := s.goActive(func(actx context.Context) { s.prepare(actx, d.ID, false, nil) })
		if err != nil {
			s.donePreparing(d)
		}
		return err
	}
	r := &run{d: d}
	st, err := s.cfg.Store.GetEnvState(ctx, d.App, d.Env)
	if err != nil {
		return err
	}
	st.App, st.Env = d.App, d.Env
	r.state = st
	rel, err := s.cfg.Store.GetRelease(ctx, d.App, d.Release)
	if err == nil {
		r.rel = rel
		r.art, r.m, err = s.manifestFor(ctx, d.App, rel)
	}
	if err == nil {
		r.env, _ = r.m.Env(d.Env)
	}
	// The lock, if any, was this deployment's, taken by whichever server ran
	// it; this server holds the lease now, so it takes the lock over.
	if holder, herr := s.cfg.Store.LockHolder(ctx, d.App, d.Env); herr == nil && (holder == holderOf(d) || strings.HasPrefix(holder, holderOf(d)+" on ")) {
		if uerr := s.cfg.Store.Unlock(ctx, d.App, d.Env, holder); uerr != nil {
			return uerr
		}
	}
	if d.State == core.StatePending && err == nil && d.Kind != core.KindConfirm && d.Kind != core.KindRevert {
		// Queued, never started: queue it again in order.
		q, err := s.queue(d.App, d.Env)
		if err != nil {
			return err
		}
		q.push(task{holder: holderOf(d), key: holderOf(d), run: func(ctx context.Context) { s.runDeployment(ctx, d.ID) }}, false)
		return nil
	}
	reason := "server restarted during " + string(d.Step)
	if err != nil || d.Kind == core.KindConfirm || d.Kind == core.KindRevert || d.State == core.StatePending {
		// A confirm or revert that was cut short: its colour is not live and
		// not what a slot that is "starting" promises; drop what it started.
		if err == nil && d.Colour != "" && st.Live != d.Colour {
			if sl := st.Slots[d.Colour]; sl != nil && sl.State == core.SlotStarting {
				s.abandonSlot(ctx, r, d.Colour)
			}
		}
		if err != nil {
			reason += ": " + err.Error()
		}
		s.finish(ctx, r, core.StateFailed, reason)
		return nil
	}
	if !d.Step.Switched() {
		// Traffic never moved: drop the half-started colour.
		if d.Colour != "" && st.Live != d.Colour {
			if sl := st.Slots[d.Colour]; sl != nil && sl.Release == d.Release && sl.State != core.SlotLive {
				s.abandonSlot(ctx, r, d.Colour)
			}
		}
		s.finish(ctx, r, core.StateFailed, reason+"; the previous release kept serving")
		return nil
	}
	if d.Step == core.StepLive {
		// Verification had passed and was recorded: the release stays.
		s.finish(ctx, r, core.StateSucceeded, reason+" after verification had passed")
		return nil
	}
	if d.Step == core.StepSwitchBack && st.Live != d.Colour {
		// The switch back had been made and recorded: the failed colour
		// stays for investigation.
		s.finish(ctx, r, core.StateRolledBack, reason+" after switching back")
		return nil
	}
	// Traffic may have moved. Go back to the previous colour when it is still
	// there; otherwise the new release is what serves.
	if st.Live == d.Colour {
		prev := st.Live.Other()
		if ps := st.Slots[prev]; ps != nil && len(ps.Instances) > 0 && ps.Release == d.PreviousRelease {
			return s.switchBack(ctx, r, d.Colour, prev, reason, false)
		}
		s.finish(ctx, r, core.StateSucceeded, reason+"; no previous colour to return to, so it stays live")
		return nil
	}
	// The switch had not been recorded: the old colour is what the state
	// calls live, but the proxy may already send traffic to the new one.
	// Route back first, then stop the new colour, so no request meets a
	// stopped instance.
	if ls := st.Slots[st.Live]; ls != nil && ls.State == core.SlotLive && len(ls.Instances) > 0 {
		if err := s.route(ctx, routeSpec(d.App, r.env, r.m, st.Live, *ls)); err != nil {
			s.markUnrouted(d.App, d.Env, err)
			// Keep the new colour running: the proxy may still send to it.
			s.finish(ctx, r, core.StateFailed, reason+"; the proxy could not be routed back ("+err.Error()+"), so the new colour keeps running until it can")
			return nil
		}
	}
	s.abandonSlot(ctx, r, d.Colour)
	s.finish(ctx, r, core.StateFailed, reason+"; the previous release kept serving")
	return nil
}

// markUnrouted records that an environment's live colour could not be
// routed (the proxy was unreachable): the environment is reported
// degraded and the tick retries until it is routed.
func (s *Service) markUnrouted(app, env string, err error) {
	s.mu.Lock()
	s.unrouted[envKey(app, env)] = err.Error()
	s.mu.Unlock()
}

// reroute routes an environment's live colour again, in its queue.
func (s *Service) reroute(app, env string) {
	q, err := s.queue(app, env)
	if err != nil {
		return
	}
	key := "re-route of " + envKey(app, env)
	q.push(task{holder: key, key: key, run: func(ctx context.Context) {
		st, err := s.cfg.Store.GetEnvState(ctx, app, env)
		if err != nil {
			return
		}
		sl := st.Slots[st.Live]
		if sl == nil || sl.State != core.SlotLive || len(sl.Instances) == 0 {
			s.mu.Lock()
			delete(s.unrouted, envKey(app, env))
			s.mu.Unlock()
			return
		}
		rel, err := s.cfg.Store.GetRelease(ctx, app, sl.Release)
		if err != nil {
			return
		}
		_, m, err := s.manifestFor(ctx, app, rel)
		if err != nil {
			return
		}
		e, ok := m.Env(env)
		if !ok {
			return
		}
		if err := s.route(ctx, routeSpec(app, e, m, st.Live, *sl)); err != nil {
			s.markUnrouted(app, env, err)
			return
		}
		s.mu.Lock()
		delete(s.unrouted, envKey(app, env))
		s.mu.Unlock()
		s.emit(ctx, core.Event{App: app, Env: env, Type: core.EventDeployInfo, Release: sl.Release, Actor: "cutover",
			Message: fmt.Sprintf("%s/%s routed to its live %s (#%d) again", app, env, st.Live, sl.Release)})
		// A colour a recovery had to leave running while the proxy might
		// still send to it is stopped now that it does not.
		st.App, st.Env = app, env
		for c, other := range st.Slots {
			if c != st.Live && other.State == core.SlotStarting {
				if err := s.stopSlot(ctx, &st, c, m.StopGrace); err != nil {
					s.log.Error("stop a colour left starting", "app", app, "env", env, "colour", c, "err", err)
				}
			}
		}
	}}, false)
}

// reconcile stops instances no slot refers to and routes live colours.
func (s *Service) reconcile(ctx context.Context) error {
	running, err := s.cfg.Driver.List(ctx)
	if err != nil {
		return fmt.Errorf("list instances: %w", err)
	}
	known := map[string]bool{}
	apps, err := s.cfg.Store.ListApps(ctx)
	if err != nil {
		return err
	}
	for _, app := range apps {
		sts, err := s.cfg.Store.ListEnvStates(ctx, app.Name)
		if err != nil {
			return fmt.Errorf("list environments of %s: %w", app.Name, err)
		}
		for _, st := range sts {
			env := st.Env
			for _, sl := range st.Slots {
				for _, in := range sl.Instances {
					known[in.ID] = true
				}
			}
			if sl := st.Slots[st.Live]; sl != nil && sl.State == core.SlotLive && len(sl.Instances) > 0 {
				rel, err := s.cfg.Store.GetRelease(ctx, app.Name, sl.Release)
				if err != nil {
					continue
				}
				_, m, err := s.manifestFor(ctx, app.Name, rel)
				if err != nil {
					continue
				}
				e, ok := m.Env(env)
				if !ok {
					continue
				}
				if err := s.route(ctx, routeSpec(app.Name, e, m, st.Live, *sl)); err != nil {
					s.log.Error("re-route live colour", "app", app.Name, "env", env, "err", err)
					s.markUnrouted(app.Name, env, err) // the tick retries
				}
			}
		}
	}
	var orphans []core.Instance
	for _, in := range running {
		if !known[in.ID] {
			orphans = append(orphans, in)
		}
	}
	if len(orphans) > 0 {
		s.log.Warn("stopping orphan instances", "count", len(orphans))
		if err := s.cfg.Driver.Stop(ctx, orphans, 5*time.Second); err != nil {
			return fmt.Errorf("stop orphans: %w", err)
		}
	}
	return nil
}
