package deploy

import (
	"context"
	"fmt"
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
	// Lock is set while the environment is locked (deploys refused).
	Lock *core.EnvLock `json:"lock,omitempty"`
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
		if s.cfg.Governance != nil {
			if l, err := s.cfg.Governance.EnvLock(ctx, app, env); err == nil {
				es.Lock = &l
			}
		}
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

// LogsRequest says whose logs to read.
type LogsRequest struct {
	App, Env string
	// Colour picks a colour's current instances (default: the live one).
	Colour core.Colour
	// Deployment picks the instances a deployment started, running or not
	// (a failed colour's logs after it was stopped).
	Deployment int64
	// Bytes bounds what is read in all (default and most: MaxLogBytes);
	// Lines keeps only the last lines of each instance (0: all read).
	Bytes int64
	Lines int
}

// InstanceLog is the end of one instance's log, secrets redacted.
type InstanceLog struct {
	Instance string      `json:"instance"`
	Addr     string      `json:"addr,omitempty"`
	Colour   core.Colour `json:"colour,omitempty"`
	Release  int         `json:"release"`
	Log      string      `json:"log"`
	Error    string      `json:"error,omitempty"` // why the log could not be read
}

// Logs returns the end of the logs of an environment's instances: a
// colour's current ones, or the ones a deployment started. Secrets are
// redacted from the whole text before it is cut.
func (s *Service) Logs(ctx context.Context, req LogsRequest) ([]InstanceLog, error) {
	if _, err := s.App(ctx, req.App); err != nil {
		return nil, err
	}
	if err := core.ValidateName("env", req.Env); err != nil {
		return nil, err
	}
	if req.Bytes <= 0 || req.Bytes > MaxLogBytes {
		req.Bytes = MaxLogBytes
	}
	if req.Lines < 0 {
		return nil, fmt.Errorf("%w: lines %d: want a positive number", core.ErrInvalid, req.Lines)
	}
	var insts []core.Instance
	var release int
	if req.Deployment > 0 {
		d, err := s.cfg.Store.GetDeployment(ctx, req.Deployment)
		if err != nil {
			return nil, fmt.Errorf("deployment %d: %w", req.Deployment, err)
		}
		if d.App != req.App || d.Env != req.Env {
			return nil, fmt.Errorf("%w: deployment %d is of %s/%s, not %s/%s", core.ErrInvalid, d.ID, d.App, d.Env, req.App, req.Env)
		}
		if len(d.Instances) == 0 {
			return nil, fmt.Errorf("%w: deployment %d started no instance (it ended at %s: %s)", core.ErrNotFound, d.ID, d.Step, d.Reason)
		}
		release = d.Release
		for _, id := range d.Instances {
			insts = append(insts, core.Instance{ID: id, App: d.App, Env: d.Env, Colour: d.Colour, Release: d.Release})
		}
	} else {
		st, err := s.cfg.Store.GetEnvState(ctx, req.App, req.Env)
		if err != nil {
			return nil, err
		}
		colour := req.Colour
		if colour == "" {
			colour = st.Live
		}
		if colour != "" && !colour.Valid() {
			return nil, fmt.Errorf("%w: colour %q: want blue or green", core.ErrInvalid, colour)
		}
		sl := st.Slots[colour]
		if sl == nil || len(sl.Instances) == 0 {
			return nil, fmt.Errorf("%w: no instances run in %s/%s %s now (the logs of a deployment's instances stay readable: --deployment ID)", core.ErrNotFound, req.App, req.Env, colour)
		}
		insts, release = sl.Instances, sl.Release
	}
	// An app may print its environment: its secrets never leave the server.
	var secrets map[string]string
	if rel, err := s.cfg.Store.GetRelease(ctx, req.App, release); err == nil && rel.ConfigVersion > 0 {
		secrets, _ = s.cfg.Store.GetConfigSecrets(ctx, req.App, req.Env, rel.ConfigVersion)
	}
	per := req.Bytes / int64(len(insts))
	out := make([]InstanceLog, 0, len(insts))
	for _, in := range insts {
		il := InstanceLog{Instance: in.ID, Addr: in.Addr, Colour: in.Colour, Release: in.Release}
		// Read a little further back than asked, so a secret cut by the
		// window is still recognised, and redact before cutting.
		buf := &limitedBuffer{max: int(per), secrets: secrets}
		if err := s.cfg.Driver.Logs(ctx, in, per+int64(longest(secrets)), buf); err != nil {
			il.Error = err.Error()
		} else {
			il.Log = lastLines(buf.String(), req.Lines)
		}
		out = append(out, il)
	}
	return out, nil
}

// lastLines keeps the last n lines of text (all when n is 0).
func lastLines(text string, n int) string {
	if n <= 0 {
		return text
	}
	trimmed := strings.TrimSuffix(text, "\n")
	lines := strings.Split(trimmed, "\n")
	if len(lines) <= n {
		return text
	}
	return strings.Join(lines[len(lines)-n:], "\n") + "\n"
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
