package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
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
	// ReplaceHeld lets the deployment replace a failed colour held for
	// investigation (cutover hold); without it the deployment is refused.
	ReplaceHeld bool
	// Options ask the policy for an override, a hotfix, or to wait.
	Options core.DeployOptions
	// BuildLog receives the build output when the commit is built now.
	BuildLog io.Writer

	kind core.DeploymentKind
}

// Deploy checks the request cheaply (names, the commit, the manifest read
// from git, the environment), records the deployment and returns it at
// once. The gates, the build and the queue follow in the background as
// recorded steps; Wait or the event stream follow the deployment.
// Deploying the release that is already live records a no-op deployment.
func (s *Service) Deploy(ctx context.Context, req DeployRequest) (core.Deployment, error) {
	if req.kind == "" {
		req.kind = core.KindDeploy
	}
	if req.Options.Hotfix && req.kind == core.KindDeploy {
		req.kind = core.KindHotfix
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
	q, err := s.queue(app.Name, req.Env)
	if err != nil {
		return core.Deployment{}, err
	}
	d := core.Deployment{App: app.Name, Env: req.Env, Kind: req.kind, State: core.StatePending, Step: core.StepGates, RequestedBy: req.RequestedBy, ReplaceHeld: req.ReplaceHeld, Options: req.Options}
	state, err := s.cfg.Store.GetEnvState(ctx, app.Name, req.Env)
	if err != nil {
		return core.Deployment{}, fmt.Errorf("state of %s/%s: %w", app.Name, req.Env, err)
	}
	live := state.LiveRelease()
	if req.Release > 0 {
		rel, err := s.cfg.Store.GetRelease(ctx, app.Name, req.Release)
		if err != nil {
			return core.Deployment{}, err // the store's error names the release
		}
		if rel.Env != req.Env {
			return core.Deployment{}, fmt.Errorf("%w: release %s was made for environment %q, not %q", core.ErrInvalid, rel.Label(), rel.Env, req.Env)
		}
		a, m, err := s.manifestFor(ctx, app.Name, rel)
		if err != nil {
			return core.Deployment{}, err
		}
		if _, ok := m.Env(req.Env); !ok {
			return core.Deployment{}, fmt.Errorf("%w: env %q is not in %s of %s (environments: %s)", core.ErrNotFound, req.Env, manifest.FileName, rel.Label(), envNames(m))
		}
		if c, ok := s.cfg.Builder.(ArtifactChecker); ok && live != rel.Number {
			if err := c.Available(ctx, a); err != nil {
				// An artifact is immutable: a lost image cannot be built
				// again under the same digest, so there is no rebuild hint.
				return core.Deployment{}, fmt.Errorf("%s cannot run: %w", rel.Label(), err)
			}
		}
		if live == rel.Number && s.degraded(ctx, state) == "" {
			return s.recordNoop(ctx, req, rel)
		}
		d.Release, d.SHA = rel.Number, rel.SHA
	} else {
		sha, err := s.resolve(ctx, app, req.Ref)
		if err != nil {
			return core.Deployment{}, err
		}
		// The manifest is read from git before anything is built, so a
		// misspelt environment costs nothing.
		m, err := s.manifestAt(ctx, app, sha)
		if err != nil {
			return core.Deployment{}, err
		}
		e, ok := m.Env(req.Env)
		if !ok {
			return core.Deployment{}, fmt.Errorf("%w: env %q is not in %s of %s (environments: %s)", core.ErrNotFound, req.Env, manifest.FileName, core.ShortSHA(sha), envNames(m))
		}
		if err := s.checkPlacement(ctx, m, e); err != nil {
			return core.Deployment{}, err
		}
		if rel, ok := s.liveWithSameCommit(ctx, app.Name, req.Env, live, sha); ok && s.degraded(ctx, state) == "" {
			return s.recordNoop(ctx, req, rel)
		}
		d.SHA = sha
	}
	// Deployments enter the queue in the order they were recorded, so the
	// order check and the recording are one step.
	s.amu.Lock()
	if req.NoWait {
		busy := q.busy()
		if ids := s.preparing[envKey(app.Name, req.Env)]; busy == "" && len(ids) > 0 {
			busy = "deployment " + strconv.FormatInt(ids[0], 10)
		}
		if busy != "" {
			s.amu.Unlock()
			return core.Deployment{}, fmt.Errorf("%w: %s/%s is held by %s (retry without --no-wait to queue)", core.ErrLocked, app.Name, req.Env, busy)
		}
	}
	now := s.now()
	d.PreviousRelease, d.CreatedAt, d.UpdatedAt = live, now, now
	if d, err = s.cfg.Store.CreateDeployment(ctx, d); err != nil {
		s.amu.Unlock()
		return core.Deployment{}, fmt.Errorf("record deployment: %w", err)
	}
	s.addPreparing(d)
	s.amu.Unlock()
	s.emit(ctx, event(d, core.EventDeployStep, fmt.Sprintf("%s of %s to %s recorded by %s", d.Kind, what(d), d.Env, orSomeone(d.RequestedBy))))
	logw := req.BuildLog
	if err := s.goActive(func(actx context.Context) { s.prepare(actx, d.ID, req.NoWait, logw) }); err != nil {
		s.donePreparing(d)
		return d, err
	}
	return d, nil
}

// addPreparing records that d is being prepared (gates, build): later
// deployments of its environment enter the queue after it. Call with amu held.
func (s *Service) addPreparing(d core.Deployment) {
	k := envKey(d.App, d.Env)
	ids := s.preparing[k]
	for _, id := range ids {
		if id == d.ID {
			return
		}
	}
	ids = append(ids, d.ID)
	slices.Sort(ids)
	s.preparing[k] = ids
}

// donePreparing removes d from its environment's preparing list and wakes
// the deployments waiting for their turn.
func (s *Service) donePreparing(d core.Deployment) {
	s.amu.Lock()
	k := envKey(d.App, d.Env)
	s.preparing[k] = slices.DeleteFunc(s.preparing[k], func(id int64) bool { return id == d.ID })
	if len(s.preparing[k]) == 0 {
		delete(s.preparing, k)
	}
	s.amu.Unlock()
	s.turn.Broadcast()
}

// awaitTurn blocks until every deployment of d's environment recorded
// before d has been queued or has ended, or ctx ends.
func (s *Service) awaitTurn(ctx context.Context, d core.Deployment) error {
	stop := context.AfterFunc(ctx, func() {
		// Taking the lock orders this broadcast after the waiter's check of
		// ctx, so the wake-up cannot be lost.
		s.amu.Lock()
		//lint:ignore SA2001 the empty critical section is the point: see above
		s.amu.Unlock()
		s.turn.Broadcast()
	})
	defer stop()
	s.amu.Lock()
	defer s.amu.Unlock()
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		ids := s.preparing[envKey(d.App, d.Env)]
		if len(ids) == 0 || ids[0] >= d.ID {
			return nil
		}
		s.turn.Wait()
	}
}

// what names what a deployment ships: its release, or its commit before
// it has one.
func what(d core.Deployment) string {
	if d.Release > 0 {
		return fmt.Sprintf("#%d (%s)", d.Release, core.ShortSHA(d.SHA))
	}
	return core.ShortSHA(d.SHA)
}

// liveWithSameCommit reports whether the live release runs sha with the
// environment's latest config: deploying it again changes nothing.
func (s *Service) liveWithSameCommit(ctx context.Context, app, env string, live int, sha string) (core.Release, bool) {
	if live == 0 {
		return core.Release{}, false
	}
	lr, err := s.cfg.Store.GetRelease(ctx, app, live)
	if err != nil || lr.SHA != sha {
		return core.Release{}, false
	}
	cfgv, err := s.cfg.Store.GetConfig(ctx, app, env, 0)
	if err != nil || cfgv.Version != lr.ConfigVersion {
		return core.Release{}, false
	}
	return lr, true
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
	s.emit(ctx, event(d, core.EventDeployNoop, fmt.Sprintf("%s is already live in %s: nothing to do", rel.Label(), d.Env)))
	return d, nil
}

// errGone says a deployment reached a terminal state (cancelled) while it
// was being prepared.
var errGone = errors.New("deployment already ended")

// transition applies f to deployment id as stored, under dmu, and persists
// it; a deployment that has already ended is left alone (errGone).
func (s *Service) transition(ctx context.Context, id int64, f func(d *core.Deployment) error) (core.Deployment, error) {
	s.dmu.Lock()
	defer s.dmu.Unlock()
	d, err := s.cfg.Store.GetDeployment(ctx, id)
	if err != nil {
		return d, err
	}
	if d.State.Terminal() {
		return d, errGone
	}
	if err := f(&d); err != nil {
		return d, err
	}
	d.UpdatedAt = s.now()
	if err := s.cfg.Store.UpdateDeployment(ctx, d); err != nil {
		return d, fmt.Errorf("persist deployment %d: %w", id, err)
	}
	return d, nil
}

// prepare takes a recorded deployment through its gates and, once allowed,
// its build, then queues it. It runs outside the environment's queue, so
// a waiting or building deployment never holds up another one (a
// rollback above all).
func (s *Service) prepare(ctx context.Context, id int64, noWait bool, logw io.Writer) {
	d, err := s.cfg.Store.GetDeployment(ctx, id)
	if err != nil {
		s.log.Error("prepare deployment", "deployment", id, "err", err)
		s.notifyDone(id)
		return
	}
	defer s.donePreparing(d)
	if d.State.Terminal() {
		s.notifyDone(id)
		return
	}
	if admitted := s.evaluate(ctx, d); !admitted {
		return
	}
	s.admit(ctx, id, noWait, logw)
}

// evaluate runs the gates for d and applies the decision: it reports
// whether d may go on. A denied deployment fails; a waiting one is
// recorded as waiting (and re-evaluated at every tick).
func (s *Service) evaluate(ctx context.Context, d core.Deployment) bool {
	dec, gate, err := s.decide(ctx, d)
	if err != nil {
		if ctx.Err() != nil {
			return false // shutting down: evaluated again on the next start
		}
		s.finishPrepared(ctx, d.ID, core.StateFailed, fmt.Sprintf("gate %s: %v", gate, err))
		return false
	}
	switch dec.Verdict {
	case Deny:
		s.finishPrepared(ctx, d.ID, core.StateFailed, fmt.Sprintf("refused by %s: %s", gate, dec.Reason))
		return false
	case Wait:
		changed := false
		d, err = s.transition(ctx, d.ID, func(d *core.Deployment) error {
			var until *time.Time
			if !dec.Until.IsZero() {
				u := dec.Until.UTC()
				until = &u
			}
			changed = d.State != core.StateWaiting || d.WaitingOn != dec.Reason
			d.State, d.Step, d.WaitingOn, d.WaitUntil = core.StateWaiting, core.StepGates, dec.Reason, until
			return nil
		})
		if err == nil && changed {
			s.emit(ctx, event(d, core.EventDeployWaiting, fmt.Sprintf("%s of %s to %s waits: %s (%s)", d.Kind, what(d), d.Env, dec.Reason, gate)))
			if dec.Asks != "" {
				e := event(d, core.EventApprovalAsked, fmt.Sprintf("%s asks for %s to %s: %s", orSomeone(d.RequestedBy), what(d), d.Env, dec.Asks))
				e.Reason = dec.Asks
				s.emit(ctx, e)
			}
		}
		return false
	}
	if d.Options.Override {
		s.emit(ctx, event(d, core.EventDeployOverride, fmt.Sprintf("%s overrode the policy for %s of %s to %s: %s", orSomeone(d.RequestedBy), d.Kind, what(d), d.Env, d.Options.Reason)))
	}
	if d.State == core.StateWaiting {
		d, err = s.transition(ctx, d.ID, func(d *core.Deployment) error {
			d.State, d.WaitingOn, d.WaitUntil = core.StatePending, "", nil
			return nil
		})
		if err != nil {
			return false
		}
		s.emit(ctx, event(d, core.EventDeployAdmitted, fmt.Sprintf("%s of %s to %s admitted: every gate allows it", d.Kind, what(d), d.Env)))
	}
	return true
}

// admit builds the commit when needed, records the release and queues the
// deployment.
func (s *Service) admit(ctx context.Context, id int64, noWait bool, logw io.Writer) {
	d, err := s.cfg.Store.GetDeployment(ctx, id)
	if err != nil || d.State.Terminal() {
		s.notifyDone(id)
		return
	}
	if d.Release == 0 {
		d, err = s.transition(ctx, id, func(d *core.Deployment) error { d.Step = core.StepBuild; return nil })
		if err != nil {
			s.abortPrepare(ctx, id, err)
			return
		}
		s.emit(ctx, event(d, core.EventDeployStep, fmt.Sprintf("artifact of %s: built once per commit, reused after", core.ShortSHA(d.SHA))))
		rel, noop, err := s.releaseFor(ctx, d, logw)
		if err != nil {
			s.abortPrepare(ctx, id, err)
			return
		}
		if noop {
			s.finishPrepared(ctx, id, core.StateNoop, fmt.Sprintf("%s is already live with the same commit and config", rel.Label()))
			return
		}
		d.Release = rel.Number
	}
	if err := s.awaitTurn(ctx, d); err != nil {
		return // shutting down: the next start prepares it again
	}
	q, err := s.queue(d.App, d.Env)
	if err != nil {
		return // shutting down: the next start queues it again
	}
	release := d.Release
	d, err = s.transition(ctx, id, func(d *core.Deployment) error {
		d.Release, d.State, d.Step = release, core.StatePending, core.StepQueued
		return nil
	})
	if err != nil {
		s.abortPrepare(ctx, id, err)
		return
	}
	busy, queued := q.push(task{holder: holderOf(d), key: holderOf(d), run: func(ctx context.Context) { s.runDeployment(ctx, id) }}, noWait)
	if !queued {
		if busy == "" {
			return // already queued (recovery raced the request)
		}
		s.finishPrepared(ctx, id, core.StateCancelled, "environment busy with "+busy)
		return
	}
	s.emit(ctx, event(d, core.EventDeployQueued, fmt.Sprintf("%s of %s to %s queued", d.Kind, what(d), d.Env)))
}

// releaseFor builds d's commit (once per SHA; a build other callers share
// is not cancelled with any one of them) and records its release, or
// reports that the live release already runs the same commit and config.
func (s *Service) releaseFor(ctx context.Context, d core.Deployment, logw io.Writer) (core.Release, bool, error) {
	app, err := s.cfg.Store.GetApp(ctx, d.App)
	if err != nil {
		return core.Release{}, false, err
	}
	art, _, err := s.build(ctx, app, d.SHA, logw, d)
	if err != nil {
		return core.Release{}, false, err
	}
	state, err := s.cfg.Store.GetEnvState(ctx, d.App, d.Env)
	if err != nil {
		return core.Release{}, false, err
	}
	if lr, ok := s.liveWithSameCommit(ctx, d.App, d.Env, state.LiveRelease(), d.SHA); ok && s.degraded(ctx, state) == "" {
		return lr, true, nil
	}
	if cur, err := s.cfg.Store.GetDeployment(ctx, d.ID); err == nil && cur.State.Terminal() {
		return core.Release{}, false, errGone // cancelled during the build: no release number is used up
	}
	cfgv, err := s.cfg.Store.GetConfig(ctx, d.App, d.Env, 0)
	if err != nil {
		return core.Release{}, false, fmt.Errorf("config of %s/%s: %w", d.App, d.Env, err)
	}
	rel, err := s.cfg.Store.CreateRelease(ctx, core.Release{
		App: d.App, Env: d.Env, SHA: d.SHA, Digest: art.Digest, ConfigVersion: cfgv.Version, CreatedAt: s.now(),
	})
	if err != nil {
		return core.Release{}, false, fmt.Errorf("record release: %w", err)
	}
	return rel, false, nil
}

// abortPrepare ends a deployment whose preparation failed, unless the
// server is shutting down (the next start prepares it again).
func (s *Service) abortPrepare(ctx context.Context, id int64, err error) {
	if errors.Is(err, errGone) {
		s.notifyDone(id)
		return
	}
	if ctx.Err() != nil {
		return
	}
	s.finishPrepared(ctx, id, core.StateFailed, err.Error())
}

// finishPrepared ends a deployment that never entered the queue.
func (s *Service) finishPrepared(ctx context.Context, id int64, state core.DeploymentState, reason string) {
	ctx = context.WithoutCancel(ctx)
	d, err := s.transition(ctx, id, func(d *core.Deployment) error {
		now := s.now()
		d.State, d.Reason, d.FinishedAt = state, reason, &now
		d.Step, d.WaitingOn, d.WaitUntil = core.StepDone, "", nil
		return nil
	})
	if err != nil {
		if !errors.Is(err, errGone) {
			s.log.Error("persist outcome", "deployment", id, "err", err)
		}
		s.notifyDone(id)
		return
	}
	s.emit(ctx, event(d, core.OutcomeEvent(state), fmt.Sprintf("%s of %s to %s %s: %s", d.Kind, what(d), d.Env, state, reason)))
	s.notifyDone(id)
}

// Cancel ends a deployment that has not started running: waiting, being
// prepared, or queued. A running deployment cannot be cancelled half-way
// (roll back once it ends).
func (s *Service) Cancel(ctx context.Context, id int64, by string) (core.Deployment, error) {
	if _, err := s.activation(); err != nil {
		return core.Deployment{}, err
	}
	var reason string
	d, err := s.transition(ctx, id, func(d *core.Deployment) error {
		if d.State == core.StateRunning {
			return fmt.Errorf("%w: deployment %d is running (step %s) and cannot be cancelled half-way; roll back once it ends", core.ErrConflict, d.ID, d.Step)
		}
		now := s.now()
		reason = "cancelled by " + orSomeone(by)
		if d.State == core.StateWaiting {
			reason += " while waiting on " + d.WaitingOn
		}
		d.State, d.Step, d.Reason, d.FinishedAt, d.WaitingOn, d.WaitUntil = core.StateCancelled, core.StepDone, reason, &now, "", nil
		return nil
	})
	if errors.Is(err, errGone) {
		return d, fmt.Errorf("%w: deployment %d already ended (%s)", core.ErrConflict, id, d.State)
	}
	if err != nil {
		return d, err
	}
	s.emit(ctx, event(d, core.EventDeployCancelled, fmt.Sprintf("%s of %s to %s %s", d.Kind, what(d), d.Env, reason)))
	s.notifyDone(id)
	return d, nil
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

// checkPlacement refuses, before anything is built, an environment whose
// runtime cannot place it (a Docker host name the server does not know).
func (s *Service) checkPlacement(ctx context.Context, m *manifest.Manifest, e manifest.Environment) error {
	c, ok := s.cfg.Driver.(PlacementChecker)
	if !ok {
		return nil
	}
	if err := c.CheckPlacement(ctx, m.RuntimeOptions(e)); err != nil {
		return fmt.Errorf("%w: environments.%s in %s: %v", core.ErrInvalid, e.Name, manifest.FileName, err)
	}
	return nil
}
