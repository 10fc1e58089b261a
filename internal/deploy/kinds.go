package deploy

import (
	"context"
	"fmt"

	"github.com/cutover/cutover/internal/core"
)

// Promote deploys to env exactly the artifact live in from (the same
// commit, so the same digest), with env's own config: a deployment of
// kind promote.
func (s *Service) Promote(ctx context.Context, app, from, to, by string, opts core.DeployOptions) (core.Deployment, error) {
	if err := core.ValidateName("env", from); err != nil {
		return core.Deployment{}, err
	}
	if from == to {
		return core.Deployment{}, fmt.Errorf("%w: --from and --to name the same environment %q", core.ErrInvalid, to)
	}
	if _, err := s.App(ctx, app); err != nil {
		return core.Deployment{}, err
	}
	st, err := s.cfg.Store.GetEnvState(ctx, app, from)
	if err != nil {
		return core.Deployment{}, err
	}
	live := st.LiveRelease()
	if live == 0 {
		return core.Deployment{}, fmt.Errorf("%w: nothing is live in %s/%s to promote", core.ErrNotFound, app, from)
	}
	rel, err := s.cfg.Store.GetRelease(ctx, app, live)
	if err != nil {
		return core.Deployment{}, err
	}
	return s.Deploy(ctx, DeployRequest{App: app, Env: to, Ref: rel.SHA, RequestedBy: by, Options: opts, kind: core.KindPromote})
}

// Recycle ships the live artifact of env again with the environment's
// latest config version, as a deployment of kind recycle: a config-only
// release; the migration does not run.
func (s *Service) Recycle(ctx context.Context, app, env, by string) (core.Deployment, error) {
	if err := core.ValidateName("env", env); err != nil {
		return core.Deployment{}, err
	}
	if _, err := s.App(ctx, app); err != nil {
		return core.Deployment{}, err
	}
	st, err := s.cfg.Store.GetEnvState(ctx, app, env)
	if err != nil {
		return core.Deployment{}, err
	}
	live := st.LiveRelease()
	if live == 0 {
		return core.Deployment{}, fmt.Errorf("%w: nothing is live in %s/%s to recycle", core.ErrNotFound, app, env)
	}
	rel, err := s.cfg.Store.GetRelease(ctx, app, live)
	if err != nil {
		return core.Deployment{}, err
	}
	return s.Deploy(ctx, DeployRequest{App: app, Env: env, Ref: rel.SHA, RequestedBy: by, kind: core.KindRecycle})
}
