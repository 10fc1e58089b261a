package deploy

import (
	"context"
	"errors"
	"fmt"

	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/manifest"
)

// exemptFromGates lists the kinds no gate may stop: going back to a
// release that already ran must always be possible.
func exemptFromGates(k core.DeploymentKind) bool {
	return k == core.KindRollback || k == core.KindRevert || k == core.KindConfirm
}

// decide asks every gate about d, in order: the first that denies or
// makes it wait decides; otherwise d is allowed. It also returns the name
// of the deciding gate.
func (s *Service) decide(ctx context.Context, d core.Deployment) (Decision, string, error) {
	if exemptFromGates(d.Kind) {
		return Allowed(), "", nil
	}
	app, err := s.cfg.Store.GetApp(ctx, d.App)
	if err != nil {
		return Decision{}, "", err
	}
	m, err := s.manifestOf(ctx, app, d)
	if err != nil {
		return Decision{}, "", err
	}
	env, ok := m.Env(d.Env)
	if !ok {
		return Denied(fmt.Sprintf("env %q is not in %s (environments: %s)", d.Env, manifest.FileName, envNames(m))), "manifest", nil
	}
	in := GateInput{App: app, Deployment: d, Manifest: m, Env: env}
	if env.From != "" {
		if from, ok := m.Env(env.From); ok {
			in.From = &from
		}
	}
	for _, g := range s.gates {
		dec, err := g.Decide(ctx, in)
		if err != nil {
			return Decision{}, g.Name(), err
		}
		if dec.Verdict != Allow {
			return dec, g.Name(), nil
		}
	}
	return Allowed(), "", nil
}

// manifestOf returns the manifest of what d deploys: the release's
// artifact when it has one, the commit read from git before a build.
func (s *Service) manifestOf(ctx context.Context, app core.App, d core.Deployment) (*manifest.Manifest, error) {
	if d.Release > 0 {
		rel, err := s.cfg.Store.GetRelease(ctx, app.Name, d.Release)
		if err != nil {
			return nil, err
		}
		_, m, err := s.manifestFor(ctx, app.Name, rel)
		return m, err
	}
	return s.manifestAt(ctx, app, d.SHA)
}

// manifestAt reads and validates the manifest of a commit from git.
func (s *Service) manifestAt(ctx context.Context, app core.App, sha string) (*manifest.Manifest, error) {
	b, err := s.cfg.Source.ReadFile(ctx, app.Repo, sha, manifest.FileName)
	if errors.Is(err, core.ErrNotFound) {
		return nil, fmt.Errorf("%w: commit %s has no %s at its root (a commit from before it was added?); deploy a commit that has one", core.ErrInvalid, core.ShortSHA(sha), manifest.FileName)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s of commit %s: %w", manifest.FileName, core.ShortSHA(sha), err)
	}
	m, err := manifest.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%w: commit %s: %v", core.ErrInvalid, core.ShortSHA(sha), err)
	}
	return m, nil
}

// promotionGate enforces the manifest's promotion chain: a commit reaches
// an environment with `from:` only after it succeeded in that environment.
// Once a server-side policy names the environment, the policy decides
// instead (a commit's manifest cannot weaken it).
type promotionGate struct{ s *Service }

func (promotionGate) Name() string { return "promotion" }

func (g promotionGate) Decide(ctx context.Context, in GateInput) (Decision, error) {
	if _, _, ok, err := g.s.policyOf(ctx, in.App.Name, in.Env.Name); err != nil || ok {
		return Allowed(), err
	}
	if in.Deployment.Options.Hotfix {
		return Denied("a hotfix needs a server-side policy with approval (cutover policy set): without one, the promotion chain applies"), nil
	}
	if in.Env.From == "" {
		return Allowed(), nil
	}
	var before int64
	for {
		ds, err := g.s.cfg.Store.ListDeployments(ctx, in.App.Name, in.Env.From, before, 500)
		if err != nil {
			return Decision{}, fmt.Errorf("history of %s: %w", in.Env.From, err)
		}
		for _, d := range ds {
			if d.SHA == in.Deployment.SHA && d.State == core.StateSucceeded {
				return Allowed(), nil
			}
		}
		if len(ds) < 500 {
			return Denied(fmt.Sprintf("commit %s has not been deployed successfully to %q, which %q promotes from", core.ShortSHA(in.Deployment.SHA), in.Env.From, in.Env.Name)), nil
		}
		before = ds[len(ds)-1].ID
	}
}

// evaluateWaiting asks the gates again about every waiting deployment and
// admits those now allowed. Each is evaluated by one goroutine at a time.
func (s *Service) evaluateWaiting(ctx context.Context) {
	ds, err := s.cfg.Store.UnfinishedDeployments(ctx)
	if err != nil {
		s.log.Error("tick: waiting deployments", "err", err)
		return
	}
	for _, d := range ds {
		if d.State != core.StateWaiting {
			continue
		}
		key := "evaluate " + holderOf(d)
		s.mu.Lock()
		busy := s.evaluating[key]
		if !busy {
			s.evaluating[key] = true
		}
		s.mu.Unlock()
		if busy {
			continue
		}
		err := s.goActive(func(ctx context.Context) {
			defer func() {
				s.mu.Lock()
				delete(s.evaluating, key)
				s.mu.Unlock()
			}()
			if s.evaluate(ctx, d) {
				// Admitted: it takes its turn behind those recorded before it.
				s.amu.Lock()
				s.addPreparing(d)
				s.amu.Unlock()
				defer s.donePreparing(d)
				s.admit(ctx, d.ID, false, nil)
			}
		})
		if err != nil {
			s.mu.Lock()
			delete(s.evaluating, key)
			s.mu.Unlock()
			return
		}
	}
}
