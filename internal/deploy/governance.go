package deploy

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/cutover/cutover/internal/core"
)

// What people and CI say about commits and environments: CI results,
// reviews, approvals and locks. The gates read them.

// checkNamePattern bounds a CI check's name ("test", "ci/build", "lint.go").
var checkNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$`)

const (
	maxReasonLen = 500
	maxURLLen    = 2048
)

func (s *Service) governance() (GovernanceStore, error) {
	if s.cfg.Governance == nil {
		return nil, errors.New("this server keeps no governance records")
	}
	return s.cfg.Governance, nil
}

// commitOf resolves ref (a SHA, short SHA, branch or tag) of app to a full SHA.
func (s *Service) commitOf(ctx context.Context, appName, ref string) (core.App, string, error) {
	app, err := s.App(ctx, appName)
	if err != nil {
		return app, "", err
	}
	if ref == "" {
		return app, "", fmt.Errorf("%w: a commit is required (a SHA, branch or tag)", core.ErrInvalid)
	}
	sha, err := s.resolve(ctx, app, ref)
	return app, sha, err
}

// ReportCheck records a CI result for a commit; the newest per name wins.
func (s *Service) ReportCheck(ctx context.Context, c core.CommitStatus) (core.CommitStatus, error) {
	g, err := s.governance()
	if err != nil {
		return c, err
	}
	if _, err := s.activation(); err != nil {
		return c, err
	}
	if !checkNamePattern.MatchString(c.Name) {
		return c, fmt.Errorf("%w: check name %q: use 1-64 letters, digits, '.', '_', '-' or '/'", core.ErrInvalid, c.Name)
	}
	if _, err := core.ParseCheckState(string(c.State)); err != nil {
		return c, err
	}
	if c.URL != "" {
		u, err := url.Parse(c.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(c.URL) > maxURLLen {
			return c, fmt.Errorf("%w: url %q: want an http(s) URL of at most %d characters", core.ErrInvalid, c.URL, maxURLLen)
		}
	}
	if _, c.SHA, err = s.commitOf(ctx, c.App, c.SHA); err != nil {
		return c, err
	}
	c.At = s.now()
	if err := g.PutCommitStatus(ctx, c); err != nil {
		return c, err
	}
	s.emit(ctx, core.Event{App: c.App, Type: core.EventCheckReported, SHA: c.SHA, Actor: c.By, Reason: string(c.State),
		Message: fmt.Sprintf("check %s of %s: %s (reported by %s)", c.Name, core.ShortSHA(c.SHA), c.State, orSomeone(c.By))})
	return c, nil
}

// Checks returns the CI results of a commit of app.
func (s *Service) Checks(ctx context.Context, app, ref string) ([]core.CommitStatus, error) {
	g, err := s.governance()
	if err != nil {
		return nil, err
	}
	_, sha, err := s.commitOf(ctx, app, ref)
	if err != nil {
		return nil, err
	}
	return g.CommitStatuses(ctx, app, sha)
}

// ReviewCommit records by's approval of a commit (the policy's review).
// Whether it counts is decided per deploy: never by the requester or an
// author of the commits the deploy brings.
func (s *Service) ReviewCommit(ctx context.Context, app, ref, by string) (core.Review, error) {
	g, err := s.governance()
	if err != nil {
		return core.Review{}, err
	}
	if _, err := s.activation(); err != nil {
		return core.Review{}, err
	}
	_, sha, err := s.commitOf(ctx, app, ref)
	if err != nil {
		return core.Review{}, err
	}
	r := core.Review{App: app, SHA: sha, By: by, At: s.now()}
	if err := g.PutReview(ctx, r); err != nil {
		return r, err
	}
	s.emit(ctx, core.Event{App: app, Type: core.EventReviewed, SHA: sha, Actor: by,
		Message: fmt.Sprintf("%s approved commit %s (review)", orSomeone(by), core.ShortSHA(sha))})
	return r, nil
}

// Approve records by's approval of a release, or of a commit, for one
// environment (the policy's approval).
func (s *Service) Approve(ctx context.Context, a core.Approval) (core.Approval, error) {
	g, err := s.governance()
	if err != nil {
		return a, err
	}
	if _, err := s.activation(); err != nil {
		return a, err
	}
	app, err := s.App(ctx, a.App)
	if err != nil {
		return a, err
	}
	if err := s.checkConfigEnv(ctx, app, a.Env); err != nil {
		return a, err
	}
	switch {
	case (a.Release > 0) == (a.SHA != ""):
		return a, fmt.Errorf("%w: give a release (--release N) or a commit (--commit SHA), one of them", core.ErrInvalid)
	case a.Release > 0:
		rel, err := s.cfg.Store.GetRelease(ctx, a.App, a.Release)
		if err != nil {
			return a, err
		}
		if rel.Env != a.Env {
			return a, fmt.Errorf("%w: release %s was made for %q, not %q", core.ErrInvalid, rel.Label(), rel.Env, a.Env)
		}
		a.SHA = rel.SHA
	default:
		if _, a.SHA, err = s.commitOf(ctx, a.App, a.SHA); err != nil {
			return a, err
		}
	}
	a.At = s.now()
	if err := g.PutApproval(ctx, a); err != nil {
		return a, err
	}
	what := "commit " + core.ShortSHA(a.SHA)
	if a.Release > 0 {
		what = fmt.Sprintf("#%d (%s)", a.Release, core.ShortSHA(a.SHA))
	}
	s.emit(ctx, core.Event{App: a.App, Env: a.Env, Type: core.EventApproved, Release: a.Release, SHA: a.SHA, Actor: a.By,
		Message: fmt.Sprintf("%s approved %s for %s", orSomeone(a.By), what, a.Env)})
	return a, nil
}

// Lock locks an environment: deploys are refused (naming the lock), not
// rollbacks, until Unlock.
func (s *Service) Lock(ctx context.Context, app, env, reason, by string) (core.EnvLock, error) {
	g, err := s.governance()
	if err != nil {
		return core.EnvLock{}, err
	}
	if _, err := s.activation(); err != nil {
		return core.EnvLock{}, err
	}
	a, err := s.App(ctx, app)
	if err != nil {
		return core.EnvLock{}, err
	}
	if err := s.checkConfigEnv(ctx, a, env); err != nil {
		return core.EnvLock{}, err
	}
	reason = strings.TrimSpace(reason)
	if reason == "" || len(reason) > maxReasonLen {
		return core.EnvLock{}, fmt.Errorf("%w: --reason is required (1-%d characters): say why, for the people it stops", core.ErrInvalid, maxReasonLen)
	}
	l := core.EnvLock{App: app, Env: env, Reason: reason, By: by, At: s.now()}
	if err := g.PutEnvLock(ctx, l); err != nil {
		return l, err
	}
	s.emit(ctx, core.Event{App: app, Env: env, Type: core.EventEnvLocked, Actor: by, Reason: reason,
		Message: fmt.Sprintf("%s/%s locked by %s: %s", app, env, orSomeone(by), reason)})
	return l, nil
}

// Unlock lifts an environment's lock (a person's or an automatic one).
func (s *Service) Unlock(ctx context.Context, app, env, by string) error {
	g, err := s.governance()
	if err != nil {
		return err
	}
	if _, err := s.activation(); err != nil {
		return err
	}
	if err := core.ValidateName("env", env); err != nil {
		return err
	}
	if _, err := s.App(ctx, app); err != nil {
		return err
	}
	if err := g.DeleteEnvLock(ctx, app, env); err != nil {
		return err
	}
	s.emit(ctx, core.Event{App: app, Env: env, Type: core.EventEnvUnlocked, Actor: by,
		Message: fmt.Sprintf("%s/%s unlocked by %s", app, env, orSomeone(by))})
	return nil
}

// lockOnSwitchBack locks an environment after an automatic switch-back, so
// automation cannot push the same bad commit again before someone looked.
func (s *Service) lockOnSwitchBack(ctx context.Context, d core.Deployment, reason string) {
	if s.cfg.Governance == nil {
		return
	}
	l := core.EnvLock{App: d.App, Env: d.Env, By: "cutover", At: s.now(), Automatic: true,
		Reason: fmt.Sprintf("automatic rollback of #%d (%s): %s", d.Release, core.ShortSHA(d.SHA), reason)}
	if err := s.cfg.Governance.PutEnvLock(context.WithoutCancel(ctx), l); err != nil {
		s.log.Error("lock after switch-back", "app", d.App, "env", d.Env, "err", err)
		return
	}
	s.emit(ctx, core.Event{App: d.App, Env: d.Env, DeploymentID: d.ID, Type: core.EventEnvLocked, Release: d.Release, SHA: d.SHA, Actor: "cutover", Reason: l.Reason,
		Message: fmt.Sprintf("%s/%s locked: %s; deploys are refused until cutover unlock %s %s (rollbacks are not)", d.App, d.Env, l.Reason, d.App, d.Env)})
}

// lockGate refuses deployments into a locked environment (rollbacks are
// exempt from every gate).
type lockGate struct{ store GovernanceStore }

func (lockGate) Name() string { return "lock" }

func (g lockGate) Decide(ctx context.Context, in GateInput) (Decision, error) {
	l, err := g.store.EnvLock(ctx, in.App.Name, in.Env.Name)
	if errors.Is(err, core.ErrNotFound) {
		return Allowed(), nil
	}
	if err != nil {
		return Decision{}, err
	}
	why := fmt.Sprintf("%s/%s is locked by %s since %s: %s (cutover unlock %s %s lifts it; rollbacks are allowed)",
		l.App, l.Env, l.By, l.At.Format(time.RFC3339), l.Reason, l.App, l.Env)
	if in.Deployment.Options.WaitForApproval {
		return Waiting("the lock to be lifted: "+why, time.Time{}), nil
	}
	return Denied(why), nil
}
