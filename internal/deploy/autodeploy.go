package deploy

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/policy"
)

// AutoDeployer is who continuous delivery records as the requester.
const AutoDeployer = "auto-deploy"

// AutoDeploy is continuous delivery: sha is the new head of branch, and
// every environment whose policy says `auto_deploy: {branch: BRANCH}` gets
// it, judged by its policy like any deploy but waiting (for CI, a lock)
// instead of being refused. A newer head supersedes an auto-deploy not yet
// running. A commit that failed, was switched back or was rolled back from
// in an environment is never auto-deployed there again (a newer commit, or
// a person, has to move on).
func (s *Service) AutoDeploy(ctx context.Context, app, branch, sha string) ([]core.Deployment, error) {
	if s.cfg.Governance == nil {
		return nil, nil
	}
	a, err := s.App(ctx, app)
	if err != nil {
		return nil, err
	}
	pv, err := s.cfg.Governance.Policy(ctx, app)
	if errors.Is(err, core.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	p, err := policy.ParseFile([]byte(pv.Body))
	if err != nil {
		return nil, err
	}
	var out []core.Deployment
	for _, ep := range p.Environments {
		if ep.AutoDeploy == nil || ep.AutoDeploy.Branch != branch {
			continue
		}
		d, why, err := s.autoDeployTo(ctx, a, ep.Name, sha)
		if err != nil {
			return out, fmt.Errorf("auto-deploy %s to %s: %w", core.ShortSHA(sha), ep.Name, err)
		}
		if why != "" {
			s.log.Info("auto-deploy skipped", "app", app, "env", ep.Name, "sha", sha, "why", why)
			continue
		}
		out = append(out, d)
	}
	return out, nil
}

// autoDeployTo deploys sha to env unless it should not; why says why not.
func (s *Service) autoDeployTo(ctx context.Context, app core.App, env, sha string) (core.Deployment, string, error) {
	st, err := s.cfg.Store.GetEnvState(ctx, app.Name, env)
	if err != nil {
		return core.Deployment{}, "", err
	}
	if live := st.LiveRelease(); live > 0 {
		if rel, err := s.cfg.Store.GetRelease(ctx, app.Name, live); err == nil && rel.SHA == sha {
			return core.Deployment{}, "already live", nil
		}
	}
	// Coalesce: one auto-deploy of the newest head; older ones not yet
	// running are superseded.
	unfinished, err := s.cfg.Store.UnfinishedDeployments(ctx)
	if err != nil {
		return core.Deployment{}, "", err
	}
	for _, d := range unfinished {
		if d.App != app.Name || d.Env != env {
			continue
		}
		if d.SHA == sha {
			return core.Deployment{}, fmt.Sprintf("deployment %d of it is under way", d.ID), nil
		}
		if d.RequestedBy == AutoDeployer && d.State != core.StateRunning {
			if _, err := s.Cancel(ctx, d.ID, AutoDeployer+" (superseded by "+core.ShortSHA(sha)+")"); err != nil && !errors.Is(err, core.ErrConflict) {
				return core.Deployment{}, "", err
			}
		}
	}
	if burned, err := s.burned(ctx, app.Name, env, sha); err != nil || burned != "" {
		return core.Deployment{}, burned, err
	}
	d, err := s.Deploy(ctx, DeployRequest{App: app.Name, Env: env, Ref: sha, RequestedBy: AutoDeployer,
		Options: core.DeployOptions{WaitForApproval: true}})
	return d, "", err
}

// burned says why sha must not be auto-deployed to env again: it failed
// there, was switched back, or was rolled back from; "" when it may.
func (s *Service) burned(ctx context.Context, app, env, sha string) (string, error) {
	ds, err := s.cfg.Store.ListDeployments(ctx, app, env, 0, 200)
	if err != nil {
		return "", err
	}
	for _, d := range ds { // newest first
		switch {
		case d.SHA == sha && d.State == core.StateSucceeded && d.RequestedBy != AutoDeployer:
			return "", nil // a person deployed it since: it is theirs to judge
		case d.SHA == sha && (d.State == core.StateFailed || d.State == core.StateRolledBack) && !strings.HasPrefix(d.Reason, "refused by "):
			return fmt.Sprintf("deployment %d of it %s", d.ID, d.State), nil
		case d.Kind == core.KindRollback && d.State == core.StateSucceeded && d.PreviousRelease > 0:
			if rel, err := s.cfg.Store.GetRelease(ctx, app, d.PreviousRelease); err == nil && rel.SHA == sha {
				return fmt.Sprintf("rolled back from by deployment %d", d.ID), nil
			}
		}
	}
	return "", nil
}

// pollAutoDeploy asks, at most every poll interval per environment, for the
// head of each auto-deployed branch (the tick calls it).
func (s *Service) pollAutoDeploy(ctx context.Context, app core.App) {
	if s.cfg.Governance == nil {
		return
	}
	pv, err := s.cfg.Governance.Policy(ctx, app.Name)
	if err != nil {
		return
	}
	p, err := policy.ParseFile([]byte(pv.Body))
	if err != nil {
		return
	}
	for _, ep := range p.Environments {
		a := ep.AutoDeploy
		if a == nil || a.Poll <= 0 {
			continue
		}
		key := envKey(app.Name, ep.Name)
		s.mu.Lock()
		due := s.now().Sub(s.polled[key]) >= a.Poll
		if due {
			s.polled[key] = s.now()
		}
		s.mu.Unlock()
		if !due {
			continue
		}
		sha, err := s.cfg.Source.ResolveCommit(ctx, app.Repo, a.Branch)
		if err != nil {
			s.log.Warn("auto-deploy poll", "app", app.Name, "branch", a.Branch, "err", err)
			continue
		}
		if _, err := s.AutoDeploy(ctx, app.Name, a.Branch, sha); err != nil {
			s.log.Error("auto-deploy", "app", app.Name, "err", err)
		}
	}
}
