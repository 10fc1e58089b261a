package deploy

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/cutover/cutover/internal/core"
)

// Bounds on what callers may ask for, so one request cannot make the server
// read without limit.
const (
	MaxLogBytes   = 1 << 20
	MaxConfigVars = 256
	MaxConfigSize = 64 << 10
	// MinSecretLen is the shortest secret value accepted, in bytes: the
	// shortest that secret.Redact removes from logs.
	MinSecretLen = 4
)

// Apps lists the registered apps.
func (s *Service) Apps(ctx context.Context) ([]core.App, error) { return s.cfg.Store.ListApps(ctx) }

// App returns one app.
func (s *Service) App(ctx context.Context, name string) (core.App, error) {
	if err := core.ValidateName("app", name); err != nil {
		return core.App{}, err
	}
	a, err := s.cfg.Store.GetApp(ctx, name)
	if err != nil {
		return core.App{}, fmt.Errorf("app %q: %w", name, err)
	}
	return a, nil
}

// EnvStatus is what `cutover status` shows for one environment.
type EnvStatus struct {
	Env      string           `json:"env"`
	Live     *core.Release    `json:"live,omitempty"`
	State    core.EnvState    `json:"state"`
	Current  *core.Deployment `json:"current,omitempty"` // the newest deployment
	LockedBy string           `json:"locked_by,omitempty"`
	// Degraded says what is wrong with the live colour (an instance that
	// exited and is not yet replaced); "" when it is whole.
	Degraded string `json:"degraded,omitempty"`
	// Unfinished lists the deployments not yet ended, oldest first:
	// waiting on a gate, being prepared, queued or running.
	Unfinished []core.Deployment `json:"unfinished,omitempty"`
}

// Status returns the state of every environment of app that has had a deployment.
func (s *Service) Status(ctx context.Context, app string) ([]EnvStatus, error) {
	if _, err := s.App(ctx, app); err != nil {
		return nil, err
	}
	sts, err := s.cfg.Store.ListEnvStates(ctx, app)
	if err != nil {
		return nil, err
	}
	unfinished, err := s.cfg.Store.UnfinishedDeployments(ctx)
	if err != nil {
		return nil, err
	}
	byEnv := map[string][]core.Deployment{}
	for _, d := range unfinished {
		if d.App != app {
			continue
		}
		if len(byEnv[d.Env]) == 0 && !slices.ContainsFunc(sts, func(st core.EnvState) bool { return st.Env == d.Env }) {
			// An environment whose first deployment has not ended yet.
			sts = append(sts, core.EnvState{App: app, Env: d.Env, Slots: map[core.Colour]*core.Slot{}})
		}
		byEnv[d.Env] = append(byEnv[d.Env], d)
	}
	slices.SortFunc(sts, func(a, b core.EnvState) int { return strings.Compare(a.Env, b.Env) })
	out := make([]EnvStatus, 0, len(sts))
	for _, st := range sts {
		env := st.Env
		st.App = app
		es := EnvStatus{Env: env, State: st, Unfinished: byEnv[env], Degraded: s.degraded(ctx, st)}
		if live := st.LiveRelease(); live > 0 {
			if rel, err := s.cfg.Store.GetRelease(ctx, app, live); err == nil {
				es.Live = &rel
			}
		}
		if ds, err := s.cfg.Store.ListDeployments(ctx, app, env, 0, 1); err == nil && len(ds) > 0 {
			es.Current = &ds[0]
		}
		es.LockedBy, _ = s.cfg.Store.LockHolder(ctx, app, env)
		out = append(out, es)
	}
	return out, nil
}

// History returns deployments newest first; env "" means every environment.
func (s *Service) History(ctx context.Context, app, env string, beforeID int64, limit int) ([]core.Deployment, error) {
	if _, err := s.App(ctx, app); err != nil {
		return nil, err
	}
	if env != "" {
		if err := core.ValidateName("env", env); err != nil {
			return nil, err
		}
	}
	if limit <= 0 {
		limit = DefaultHistoryLimit
	}
	if limit > MaxHistoryLimit {
		return nil, fmt.Errorf("%w: limit %d is above %d", core.ErrInvalid, limit, MaxHistoryLimit)
	}
	return s.cfg.Store.ListDeployments(ctx, app, env, beforeID, limit)
}

// Deployment returns one deployment.
func (s *Service) Deployment(ctx context.Context, id int64) (core.Deployment, error) {
	d, err := s.cfg.Store.GetDeployment(ctx, id)
	if err != nil {
		return d, fmt.Errorf("deployment %d: %w", id, err)
	}
	return d, nil
}

// Events returns timeline events after afterID, oldest first.
func (s *Service) Events(ctx context.Context, app string, afterID int64, limit int) ([]core.Event, error) {
	if app != "" {
		if _, err := s.App(ctx, app); err != nil {
			return nil, err
		}
	}
	if limit <= 0 || limit > MaxHistoryLimit {
		limit = MaxHistoryLimit
	}
	return s.cfg.Store.ListEvents(ctx, app, afterID, limit)
}

// Releases lists an app's releases, newest first.
func (s *Service) Releases(ctx context.Context, app string, limit int) ([]core.Release, error) {
	if _, err := s.App(ctx, app); err != nil {
		return nil, err
	}
	if limit <= 0 || limit > MaxHistoryLimit {
		limit = DefaultHistoryLimit
	}
	return s.cfg.Store.ListReleases(ctx, app, limit)
}

// Logs writes up to max bytes from the end of the logs of app's instances
// in env (the live colour unless colour is given).
func (s *Service) Logs(ctx context.Context, app, env string, colour core.Colour, max int64, w io.Writer) error {
	if _, err := s.App(ctx, app); err != nil {
		return err
	}
	if err := core.ValidateName("env", env); err != nil {
		return err
	}
	if max <= 0 || max > MaxLogBytes {
		max = MaxLogBytes
	}
	st, err := s.cfg.Store.GetEnvState(ctx, app, env)
	if err != nil {
		return err
	}
	if colour == "" {
		colour = st.Live
	}
	if colour != "" && !colour.Valid() {
		return fmt.Errorf("%w: colour %q: want blue or green", core.ErrInvalid, colour)
	}
	sl := st.Slots[colour]
	if sl == nil || len(sl.Instances) == 0 {
		return fmt.Errorf("%w: no instances in %s/%s %s", core.ErrNotFound, app, env, colour)
	}
	// An app may print its environment: its secrets never leave the server.
	var secrets map[string]string
	if rel, err := s.cfg.Store.GetRelease(ctx, app, sl.Release); err == nil && rel.ConfigVersion > 0 {
		secrets, _ = s.cfg.Store.GetConfigSecrets(ctx, app, env, rel.ConfigVersion)
	}
	per := max / int64(len(sl.Instances))
	for _, in := range sl.Instances {
		fmt.Fprintf(w, "==> %s (%s, v%d) <==\n", in.ID, where(in), in.Release)
		// Redact the whole text before anything is cut or written.
		buf := &limitedBuffer{max: int(per), secrets: secrets}
		if err := s.cfg.Driver.Logs(ctx, in, per+int64(longest(secrets)), buf); err != nil {
			fmt.Fprintf(w, "(%v)\n", err)
			continue
		}
		io.WriteString(w, buf.String())
	}
	return nil
}

// longest is the length of the longest secret value: logs are read that
// much further back so a secret cut by the window is still recognised.
func longest(secrets map[string]string) int {
	n := 0
	for _, v := range secrets {
		n = max(n, len(v))
	}
	return n
}
