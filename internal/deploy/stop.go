package deploy

import (
	"context"
	"errors"
	"fmt"

	"github.com/cutover/cutover/internal/core"
)

// Stop takes an environment out of service, as a recorded deployment of
// kind stop: the proxy stops routing it, then every instance of both
// colours is stopped. Its releases stay: a deploy or a rollback
// (--to N) brings it back.
func (s *Service) Stop(ctx context.Context, app, env, by string) (core.Deployment, error) {
	if err := core.ValidateName("app", app); err != nil {
		return core.Deployment{}, err
	}
	if err := core.ValidateName("env", env); err != nil {
		return core.Deployment{}, err
	}
	if _, err := s.cfg.Store.GetApp(ctx, app); err != nil {
		return core.Deployment{}, fmt.Errorf("app %q: %w", app, err)
	}
	q, err := s.queue(app, env)
	if err != nil {
		return core.Deployment{}, err
	}
	st, err := s.cfg.Store.GetEnvState(ctx, app, env)
	if err != nil {
		return core.Deployment{}, err
	}
	running := false
	for _, sl := range st.Slots {
		running = running || len(sl.Instances) > 0
	}
	if !running && st.Live == "" {
		return core.Deployment{}, fmt.Errorf("%w: nothing runs in %s/%s", core.ErrNotFound, app, env)
	}
	live := st.LiveRelease()
	now := s.now()
	d, err := s.cfg.Store.CreateDeployment(ctx, core.Deployment{
		App: app, Env: env, Kind: core.KindStop, Release: live, PreviousRelease: live, Colour: st.Live,
		State: core.StatePending, Step: core.StepQueued, RequestedBy: by, CreatedAt: now, UpdatedAt: now,
	})
	if err != nil {
		return core.Deployment{}, fmt.Errorf("record deployment: %w", err)
	}
	s.emit(ctx, event(d, core.EventDeployQueued, fmt.Sprintf("stop of %s/%s queued", app, env)))
	q.push(task{holder: holderOf(d), key: holderOf(d), run: func(ctx context.Context) { s.runStop(ctx, d.ID) }}, false)
	return d, nil
}

// runStop removes the route first, so no request meets a stopped
// instance, then stops both colours. Every step is idempotent: a restart
// runs it again from the start.
func (s *Service) runStop(ctx context.Context, id int64) {
	d, err := s.transition(ctx, id, func(d *core.Deployment) error { d.State = core.StateRunning; return nil })
	if err != nil {
		if !errors.Is(err, errGone) {
			s.log.Error("start stop", "deployment", id, "err", err)
		}
		s.notifyDone(id)
		return
	}
	r := &run{d: d}
	err = func() error {
		if err := s.step(ctx, r, core.StepSwitch, fmt.Sprintf("removing the route of %s/%s: its listener answers 503 from now on", d.App, d.Env)); err != nil {
			return err
		}
		if err := s.cfg.Store.TryLock(ctx, d.App, d.Env, s.lockHolder(d), DefaultLockTTL); err != nil {
			return err
		}
		r.locked = true
		if err := s.cfg.Router.Remove(ctx, serviceName(d.App, d.Env)); err != nil {
			return fmt.Errorf("remove the route: %w", err)
		}
		st, err := s.cfg.Store.GetEnvState(ctx, d.App, d.Env)
		if err != nil {
			return err
		}
		st.App, st.Env = d.App, d.Env
		st.Live = ""
		if err := s.putState(ctx, &st); err != nil {
			return err
		}
		if err := s.step(ctx, r, core.StepStart, fmt.Sprintf("stopping every instance of %s/%s", d.App, d.Env)); err != nil {
			return err
		}
		for _, c := range []core.Colour{core.Blue, core.Green} {
			sl := st.Slots[c]
			if sl == nil || len(sl.Instances) == 0 {
				continue
			}
			if err := s.stopSlot(ctx, &st, c, s.graceFor(ctx, d.App, sl.Release)); err != nil {
				return fmt.Errorf("stop %s: %w", c, err)
			}
		}
		return nil
	}()
	if err != nil {
		if ctx.Err() != nil {
			s.notifyDone(id)
			return
		}
		s.finish(ctx, r, core.StateFailed, err.Error())
		return
	}
	s.finish(ctx, r, core.StateSucceeded, "")
}
