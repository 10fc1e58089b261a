package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/manifest"
)

// DeployRequest asks for a commit (or an existing release) to go live in an
// environment.
type DeployRequest struct {
	App string
	Env string
	// Ref is a commit SHA, branch or tag; "" means HEAD. Ignored when
	// Release is set.
	Ref string
	// Release redeploys an existing release (rollbacks use it).
	Release int
	// NoWait refuses the request, naming the holder, when the environment
	// is busy, instead of queueing behind the running deployment.
	NoWait      bool
	RequestedBy string
	// BuildLog receives the build output when the commit is built now.
	BuildLog io.Writer

	kind core.DeploymentKind
}

// Deploy validates the request, builds the commit if it has no artifact
// yet, records a release and a pending deployment, and queues it. It returns
// at once; Wait or the event stream follow the deployment. Deploying the
// release that is already live records a no-op deployment.
func (s *Service) Deploy(ctx context.Context, req DeployRequest) (core.Deployment, error) {
	if req.kind == "" {
		req.kind = core.KindDeploy
	}
	if err := core.ValidateName("app", req.App); err != nil {
		return core.Deployment{}, err
	}
	if err := core.ValidateName("env", req.Env); err != nil {
		return core.Deployment{}, err
	}
	app, err := s.cfg.Store.GetApp(ctx, req.App)
	if err != nil {
		return core.Deployment{}, fmt.Errorf("app %q: %w", req.App, err)
	}

	var rel core.Release
	var m *manifest.Manifest
	if req.Release > 0 {
		rel, err = s.cfg.Store.GetRelease(ctx, app.Name, req.Release)
		if err != nil {
			return core.Deployment{}, fmt.Errorf("release v%d of %s: %w", req.Release, app.Name, err)
		}
		if rel.Env != req.Env {
			return core.Deployment{}, fmt.Errorf("%w: release %s was made for environment %q, not %q", core.ErrInvalid, rel.Label(), rel.Env, req.Env)
		}
		if _, m, err = s.manifestFor(ctx, app.Name, rel); err != nil {
			return core.Deployment{}, err
		}
	} else {
		sha, err := s.resolve(ctx, app, req.Ref)
		if err != nil {
			return core.Deployment{}, err
		}
		var art core.Artifact
		art, m, err = s.build(ctx, app, sha, req.BuildLog)
		if err != nil {
			return core.Deployment{}, err
		}
		envSpec, ok := m.Env(req.Env)
		if !ok {
			return core.Deployment{}, fmt.Errorf("%w: env %q is not in %s of %s (environments: %s)", core.ErrNotFound, req.Env, manifest.FileName, core.ShortSHA(sha), envNames(m))
		}
		if envSpec.From != "" {
			if err := s.checkPromotion(ctx, app.Name, envSpec.From, sha); err != nil {
				return core.Deployment{}, err
			}
			from, _ := m.Env(envSpec.From)
			for _, g := range s.cfg.Gates {
				if err := g.BeforePromotion(ctx, app, sha, m, from); err != nil {
					return core.Deployment{}, err
				}
			}
		}
		cfgv, err := s.cfg.Store.GetConfig(ctx, app.Name, req.Env, 0)
		if err != nil {
			return core.Deployment{}, fmt.Errorf("config of %s/%s: %w", app.Name, req.Env, err)
		}
		state, err := s.cfg.Store.GetEnvState(ctx, app.Name, req.Env)
		if err != nil {
			return core.Deployment{}, fmt.Errorf("state of %s/%s: %w", app.Name, req.Env, err)
		}
		if live := state.LiveRelease(); live > 0 {
			lr, err := s.cfg.Store.GetRelease(ctx, app.Name, live)
			if err == nil && lr.SHA == sha && lr.ConfigVersion == cfgv.Version {
				return s.recordNoop(ctx, req, lr)
			}
		}
		rel, err = s.cfg.Store.CreateRelease(ctx, core.Release{
			App: app.Name, Env: req.Env, SHA: sha, Digest: art.Digest,
			ConfigVersion: cfgv.Version, CreatedAt: s.now(),
		})
		if err != nil {
			return core.Deployment{}, fmt.Errorf("record release: %w", err)
		}
	}
	if _, ok := m.Env(req.Env); !ok {
		return core.Deployment{}, fmt.Errorf("%w: env %q is not in %s (environments: %s)", core.ErrNotFound, req.Env, manifest.FileName, envNames(m))
	}
	state, err := s.cfg.Store.GetEnvState(ctx, app.Name, req.Env)
	if err != nil {
		return core.Deployment{}, err
	}
	if state.LiveRelease() == rel.Number {
		return s.recordNoop(ctx, req, rel)
	}

	now := s.now()
	d, err := s.cfg.Store.CreateDeployment(ctx, core.Deployment{
		App: app.Name, Env: req.Env, Kind: req.kind, Release: rel.Number,
		PreviousRelease: state.LiveRelease(), SHA: rel.SHA,
		State: core.StatePending, Step: core.StepQueued, RequestedBy: req.RequestedBy,
		CreatedAt: now, UpdatedAt: now,
	})
	if err != nil {
		return core.Deployment{}, fmt.Errorf("record deployment: %w", err)
	}
	holder := "deployment " + strconv.FormatInt(d.ID, 10)
	busy, queued := s.queue(d.App, d.Env).push(task{holder: holder, run: func(ctx context.Context) {
		s.runDeployment(ctx, d.ID)
	}}, req.NoWait)
	if !queued {
		d.State, d.Step, d.Reason = core.StateCancelled, core.StepDone, "environment busy with "+busy
		fin := s.now()
		d.FinishedAt = &fin
		_ = s.cfg.Store.UpdateDeployment(context.WithoutCancel(ctx), d)
		return d, fmt.Errorf("%w: %s/%s is held by %s (retry without --no-wait to queue)", core.ErrLocked, d.App, d.Env, busy)
	}
	s.emit(ctx, core.Event{App: d.App, Env: d.Env, DeploymentID: d.ID, Type: "deploy.queued", Step: core.StepQueued,
		Message: fmt.Sprintf("%s of %s to %s queued", d.Kind, rel.Label(), d.Env)})
	return d, nil
}

func (s *Service) recordNoop(ctx context.Context, req DeployRequest, rel core.Release) (core.Deployment, error) {
	now := s.now()
	d, err := s.cfg.Store.CreateDeployment(ctx, core.Deployment{
		App: req.App, Env: req.Env, Kind: req.kind, Release: rel.Number, PreviousRelease: rel.Number,
		SHA: rel.SHA, State: core.StateNoop, Step: core.StepDone, RequestedBy: req.RequestedBy,
		Reason: rel.Label() + " is already live", CreatedAt: now, UpdatedAt: now, FinishedAt: &now,
	})
	if err != nil {
		return core.Deployment{}, fmt.Errorf("record deployment: %w", err)
	}
	s.emit(ctx, core.Event{App: d.App, Env: d.Env, DeploymentID: d.ID, Type: "deploy.noop", Step: core.StepDone,
		Message: fmt.Sprintf("%s is already live in %s: nothing to do", rel.Label(), d.Env)})
	return d, nil
}

// checkPromotion enforces the promotion chain: a commit reaches env only
// after it succeeded in the environment env promotes from.
func (s *Service) checkPromotion(ctx context.Context, app, from, sha string) error {
	var before int64
	for {
		ds, err := s.cfg.Store.ListDeployments(ctx, app, from, before, 500)
		if err != nil {
			return fmt.Errorf("check promotion from %s: %w", from, err)
		}
		for _, d := range ds {
			if d.SHA == sha && d.State == core.StateSucceeded {
				return nil
			}
		}
		if len(ds) < 500 {
			return fmt.Errorf("%w: commit %s has not been deployed successfully to %q, which this environment promotes from", core.ErrInvalid, core.ShortSHA(sha), from)
		}
		before = ds[len(ds)-1].ID
	}
}

func envNames(m *manifest.Manifest) string {
	s := ""
	for i, e := range m.Environments {
		if i > 0 {
			s += ", "
		}
		s += e.Name
	}
	return s
}

// run is the working set of one deployment while it executes.
type run struct {
	d     core.Deployment
	rel   core.Release
	art   core.Artifact
	m     *manifest.Manifest
	env   manifest.Environment
	state core.EnvState
}

// step persists the step before running it.
func (s *Service) step(ctx context.Context, r *run, step core.Step, msg string) {
	r.d.Step = step
	r.d.State = core.StateRunning
	r.d.UpdatedAt = s.now()
	if err := s.cfg.Store.UpdateDeployment(context.WithoutCancel(ctx), r.d); err != nil {
		s.log.Error("persist step", "deployment", r.d.ID, "step", step, "err", err)
	}
	s.emit(ctx, core.Event{App: r.d.App, Env: r.d.Env, DeploymentID: r.d.ID, Type: "deploy.step", Step: step, Message: msg})
}

func (s *Service) finish(ctx context.Context, r *run, state core.DeploymentState, reason string) {
	ctx = context.WithoutCancel(ctx)
	now := s.now()
	r.d.State, r.d.Reason, r.d.UpdatedAt, r.d.FinishedAt = state, reason, now, &now
	r.d.Step = core.StepDone
	if err := s.cfg.Store.UpdateDeployment(ctx, r.d); err != nil {
		s.log.Error("persist outcome", "deployment", r.d.ID, "err", err)
	}
	_ = s.cfg.Store.Unlock(ctx, r.d.App, r.d.Env, holderOf(r.d))
	label := fmt.Sprintf("v%d", r.d.Release)
	var msg string
	switch state {
	case core.StateSucceeded:
		msg = fmt.Sprintf("%s of %s succeeded", r.d.Kind, label)
	case core.StateRolledBack:
		msg = fmt.Sprintf("%s of %s rolled back: %s", r.d.Kind, label, reason)
	default:
		msg = fmt.Sprintf("%s of %s %s: %s", r.d.Kind, label, state, reason)
	}
	s.emit(ctx, core.Event{App: r.d.App, Env: r.d.Env, DeploymentID: r.d.ID, Type: "deploy." + string(state), Step: core.StepDone, Message: msg})
	s.notifyDone(r.d.ID)
}

func holderOf(d core.Deployment) string { return "deployment " + strconv.FormatInt(d.ID, 10) }

// runDeployment executes a queued deployment to a terminal state.
func (s *Service) runDeployment(ctx context.Context, id int64) {
	d, err := s.cfg.Store.GetDeployment(context.WithoutCancel(ctx), id)
	if err != nil {
		s.log.Error("load deployment", "deployment", id, "err", err)
		s.notifyDone(id)
		return
	}
	r := &run{d: d}
	if d.State.Terminal() {
		s.notifyDone(id)
		return
	}
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
	s.step(ctx, r, core.StepLock, fmt.Sprintf("locking %s/%s", d.App, d.Env))
	if err := s.cfg.Store.TryLock(ctx, d.App, d.Env, holderOf(*d), DefaultLockTTL); err != nil {
		return err
	}
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
	if live := r.state.LiveRelease(); live == d.Release {
		s.finish(ctx, r, core.StateNoop, r.rel.Label()+" is already live")
		return nil
	} else if live > 0 && d.Kind == core.KindDeploy {
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
		s.step(ctx, r, core.StepHealth, fmt.Sprintf("%s is warm in %s: checking its %d instance(s)", r.rel.Label(), colour, len(idle.Instances)))
		if err := s.checkOnce(ctx, r.m, idle.Instances); err != nil {
			// Warm but unhealthy: start it cold instead.
			s.emit(ctx, core.Event{App: d.App, Env: d.Env, DeploymentID: d.ID, Type: "deploy.info", Step: core.StepHealth,
				Message: fmt.Sprintf("warm %s instances failed a health check (%v): starting cold", colour, err)})
			warm = false
		} else if len(r.m.Smoke) > 0 {
			s.step(ctx, r, core.StepSmoke, fmt.Sprintf("running %d smoke check(s) against warm %s", len(r.m.Smoke), colour))
			if err := s.smoke(ctx, r.m, idle.Instances); err != nil {
				s.emit(ctx, core.Event{App: d.App, Env: d.Env, DeploymentID: d.ID, Type: "deploy.info", Step: core.StepSmoke,
					Message: fmt.Sprintf("warm %s instances failed a smoke check (%v): starting cold", colour, err)})
				warm = false
			}
		}
	}
	if !warm {
		// The migration runs first: if it fails, nothing else has changed.
		if r.m.Migrate != nil && d.Kind == core.KindDeploy {
			s.step(ctx, r, core.StepMigrate, "running migration: "+joinArgv(r.m.Migrate.Command))
			if err := s.migrate(ctx, r); err != nil {
				return fmt.Errorf("migration failed: %w", err)
			}
		}
		if idle.State == core.SlotFailed && len(idle.Instances) > 0 {
			s.emit(ctx, core.Event{App: d.App, Env: d.Env, DeploymentID: d.ID, Type: "deploy.info", Step: core.StepStart,
				Message: fmt.Sprintf("replacing the failed %s colour (v%d) kept for investigation", colour, idle.Release)})
		}
		if err := s.stopSlot(ctx, &r.state, colour, r.m.StopGrace); err != nil {
			return fmt.Errorf("clear %s colour: %w", colour, err)
		}
		s.step(ctx, r, core.StepStart, fmt.Sprintf("starting %d instance(s) of %s in %s", r.env.Instances, r.rel.Label(), colour))
		insts, err := s.startSlot(ctx, r, colour)
		if err != nil {
			return err
		}
		s.step(ctx, r, core.StepHealth, fmt.Sprintf("waiting for %s on %s (deadline %s)", r.m.Health.Path, addrs(insts), r.m.Health.Deadline))
		if err := s.waitHealthy(ctx, r.m, insts); err != nil {
			s.abandonSlot(ctx, r, colour)
			return fmt.Errorf("health gate: %w", err)
		}
		if len(r.m.Smoke) > 0 {
			s.step(ctx, r, core.StepSmoke, fmt.Sprintf("running %d smoke check(s) against %s", len(r.m.Smoke), colour))
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
	s.step(ctx, r, core.StepSwitch, fmt.Sprintf("switching %s to %s (%s)", d.Env, colour, r.rel.Label()))
	if err := s.cfg.Router.Route(ctx, routeSpec(d.App, r.env, r.m, slot.Instances)); err != nil {
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
	s.emit(ctx, core.Event{App: d.App, Env: d.Env, DeploymentID: d.ID, Type: "deploy.switched", Step: core.StepSwitch,
		Message: fmt.Sprintf("traffic in %s now goes to %s (%s)", d.Env, colour, r.rel.Label())})

	s.step(ctx, r, core.StepVerify, fmt.Sprintf("verifying live traffic for %s (max error rate %.2f%%)", r.m.Verify.For, r.m.Verify.MaxErrorRate*100))
	if err := s.verify(ctx, r, slot.Instances); err != nil {
		if ctx.Err() != nil {
			return err
		}
		return s.switchBack(ctx, r, colour, old, err.Error())
	}
	s.step(ctx, r, core.StepLive, fmt.Sprintf("%s is live in %s", r.rel.Label(), d.Env))
	s.finish(ctx, r, core.StateSucceeded, "")
	return nil
}

// switchBack returns traffic to the previous colour after a failed
// verification and keeps the failed colour for investigation.
func (s *Service) switchBack(ctx context.Context, r *run, failed, old core.Colour, reason string) error {
	d := &r.d
	prev := r.state.Slot(old)
	if old == "" || old == failed || len(prev.Instances) == 0 {
		s.finish(ctx, r, core.StateFailed, "verification failed ("+reason+") and there is no previous release to switch back to; "+r.rel.Label()+" keeps serving")
		return nil
	}
	s.step(ctx, r, core.StepSwitchBack, fmt.Sprintf("verification failed (%s): switching back to %s (v%d)", reason, old, prev.Release))
	if err := s.cfg.Router.Route(context.WithoutCancel(ctx), routeSpec(d.App, r.env, r.m, prev.Instances)); err != nil {
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
	s.emit(ctx, core.Event{App: d.App, Env: d.Env, DeploymentID: d.ID, Type: "deploy.switched_back", Step: core.StepSwitchBack,
		Message: fmt.Sprintf("traffic back on %s (v%d); failed %s kept for investigation at %s until %s", old, prev.Release, failed, addrs(fs.Instances), fs.Until.Format(time.RFC3339))})
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
	base, err := s.cfg.Router.Stats(svc)
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
			return s.errorRate(svc, base, v, true)
		case <-tick.C:
			if err := s.errorRate(svc, base, v, false); err != nil {
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

func (s *Service) errorRate(svc string, base RouteStats, v manifest.Verify, final bool) error {
	cur, err := s.cfg.Router.Stats(svc)
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

func (s *Service) putState(ctx context.Context, st *core.EnvState) error {
	st.UpdatedAt = s.now()
	if err := s.cfg.Store.PutEnvState(context.WithoutCancel(ctx), *st); err != nil {
		return fmt.Errorf("persist state of %s/%s: %w", st.App, st.Env, err)
	}
	return nil
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
		Count: r.env.Instances, Dir: r.art.Path, Command: r.m.Run.Command,
		Environ: environ, Secrets: secrets,
	}, nil
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

func routeSpec(app string, env manifest.Environment, m *manifest.Manifest, insts []core.Instance) RouteSpec {
	return RouteSpec{Service: serviceName(app, env.Name), Listen: env.Listen, Host: env.Host, HealthPath: m.Health.Path, Targets: addrs(insts)}
}

func addrs(insts []core.Instance) []string {
	out := make([]string, len(insts))
	for i, in := range insts {
		out[i] = in.Addr
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
