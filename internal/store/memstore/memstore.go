// Package memstore is an in-memory deploy.Store for unit tests of the
// deploy machine: it passes the same conformance suite (storetest) as the
// SQL stores, so a test that runs on it tests the machine, not a fake's
// quirks. It can be made to fail chosen writes (Fail).
package memstore

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cutover/cutover/internal/core"
)

// Store keeps everything in maps under one mutex. Values are copied in and
// out (env states through JSON), so callers never share memory with it.
type Store struct {
	mu          sync.Mutex
	apps        map[string]core.App
	artifacts   map[string]core.Artifact // app/sha
	configs     map[string][]config      // app/env -> versions in order
	releases    map[string][]core.Release
	deployments []core.Deployment // index = ID-1
	events      []core.Event      // index = ID-1
	cursors     map[string]int64
	states      map[string][]byte // app/env -> JSON of core.EnvState
	locks       map[string]lock

	// Fail, when set, is asked before every write with the method's name
	// and the value written; an error it returns is returned by the write,
	// which then changes nothing.
	Fail func(method string, v any) error
}

type config struct {
	cv      core.ConfigVersion
	secrets map[string]string
}

type lock struct {
	holder string
	until  time.Time
}

// New returns an empty store.
func New() *Store {
	return &Store{
		apps: map[string]core.App{}, artifacts: map[string]core.Artifact{}, configs: map[string][]config{},
		releases: map[string][]core.Release{}, cursors: map[string]int64{}, states: map[string][]byte{}, locks: map[string]lock{},
	}
}

func key(a, b string) string { return a + "/" + b }

func (s *Store) fail(method string, v any) error {
	if s.Fail == nil {
		return nil
	}
	return s.Fail(method, v)
}

// CreateApp implements deploy.Store.
func (s *Store) CreateApp(ctx context.Context, app core.App) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fail("CreateApp", app); err != nil {
		return err
	}
	if _, ok := s.apps[app.Name]; ok {
		return fmt.Errorf("app %s: %w", app.Name, core.ErrConflict)
	}
	s.apps[app.Name] = app
	return nil
}

// GetApp implements deploy.Store.
func (s *Store) GetApp(ctx context.Context, name string) (core.App, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.apps[name]
	if !ok {
		return a, fmt.Errorf("app %s: %w", name, core.ErrNotFound)
	}
	return a, nil
}

// ListApps implements deploy.Store.
func (s *Store) ListApps(ctx context.Context) ([]core.App, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]core.App, 0, len(s.apps))
	for _, a := range s.apps {
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b core.App) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

// DeleteApp implements deploy.Store.
func (s *Store) DeleteApp(ctx context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.apps[name]; !ok {
		return fmt.Errorf("app %s: %w", name, core.ErrNotFound)
	}
	delete(s.apps, name)
	prefix := name + "/"
	for k := range s.artifacts {
		if strings.HasPrefix(k, prefix) {
			delete(s.artifacts, k)
		}
	}
	for _, m := range []map[string][]config{s.configs} {
		for k := range m {
			if strings.HasPrefix(k, prefix) {
				delete(m, k)
			}
		}
	}
	delete(s.releases, name)
	for k := range s.states {
		if strings.HasPrefix(k, prefix) {
			delete(s.states, k)
		}
	}
	for k := range s.locks {
		if strings.HasPrefix(k, prefix) {
			delete(s.locks, k)
		}
	}
	// Deployment IDs are positions: a removed app's deployments stay as
	// tombstones nobody lists (ListDeployments filters by app).
	for i, d := range s.deployments {
		if d.App == name {
			s.deployments[i] = core.Deployment{ID: d.ID, State: core.StateCancelled}
		}
	}
	return nil
}

// PutArtifact implements deploy.Store.
func (s *Store) PutArtifact(ctx context.Context, a core.Artifact) (core.Artifact, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fail("PutArtifact", a); err != nil {
		return core.Artifact{}, err
	}
	k := key(a.App, a.SHA)
	if old, ok := s.artifacts[k]; ok {
		if old.Digest != a.Digest {
			return old, fmt.Errorf("artifact %s of %s has digest %s, not %s: %w", core.ShortSHA(a.SHA), a.App, old.Digest, a.Digest, core.ErrConflict)
		}
		return old, nil
	}
	s.artifacts[k] = a
	return a, nil
}

// GetArtifact implements deploy.Store.
func (s *Store) GetArtifact(ctx context.Context, app, sha string) (core.Artifact, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.artifacts[key(app, sha)]
	if !ok {
		return a, fmt.Errorf("artifact %s of %s: %w", core.ShortSHA(sha), app, core.ErrNotFound)
	}
	return a, nil
}

// DeleteArtifact implements deploy.Store.
func (s *Store) DeleteArtifact(ctx context.Context, app, sha string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fail("DeleteArtifact", sha); err != nil {
		return err
	}
	delete(s.artifacts, key(app, sha))
	return nil
}

// ListArtifacts implements deploy.Store: newest first.
func (s *Store) ListArtifacts(ctx context.Context, app string, limit int) ([]core.Artifact, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []core.Artifact
	for _, a := range s.artifacts {
		if a.App == app {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(a, b core.Artifact) int { return b.CreatedAt.Compare(a.CreatedAt) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// PutConfig implements deploy.Store.
func (s *Store) PutConfig(ctx context.Context, app, env string, vars, secrets map[string]string) (core.ConfigVersion, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fail("PutConfig", vars); err != nil {
		return core.ConfigVersion{}, err
	}
	k := key(app, env)
	cv := core.ConfigVersion{App: app, Env: env, Version: len(s.configs[k]) + 1, Vars: map[string]string{}, CreatedAt: time.Now().UTC()}
	for k, v := range vars {
		cv.Vars[k] = v
	}
	sec := map[string]string{}
	for k, v := range secrets {
		sec[k] = v
		cv.SecretKeys = append(cv.SecretKeys, k)
	}
	slices.Sort(cv.SecretKeys)
	s.configs[k] = append(s.configs[k], config{cv: cv, secrets: sec})
	return copyConfig(cv), nil
}

func copyConfig(cv core.ConfigVersion) core.ConfigVersion {
	vars := make(map[string]string, len(cv.Vars))
	for k, v := range cv.Vars {
		vars[k] = v
	}
	cv.Vars = vars
	cv.SecretKeys = slices.Clone(cv.SecretKeys)
	return cv
}

func (s *Store) config(app, env string, version int) (config, error) {
	vs := s.configs[key(app, env)]
	if version == 0 {
		if len(vs) == 0 {
			return config{cv: core.ConfigVersion{App: app, Env: env, Vars: map[string]string{}}}, nil
		}
		return vs[len(vs)-1], nil
	}
	if version < 0 || version > len(vs) {
		return config{}, fmt.Errorf("config v%d of %s/%s: %w", version, app, env, core.ErrNotFound)
	}
	return vs[version-1], nil
}

// GetConfig implements deploy.Store.
func (s *Store) GetConfig(ctx context.Context, app, env string, version int) (core.ConfigVersion, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.config(app, env, version)
	return copyConfig(c.cv), err
}

// GetConfigSecrets implements deploy.Store.
func (s *Store) GetConfigSecrets(ctx context.Context, app, env string, version int) (map[string]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.config(app, env, version)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for k, v := range c.secrets {
		out[k] = v
	}
	return out, nil
}

// CreateRelease implements deploy.Store.
func (s *Store) CreateRelease(ctx context.Context, r core.Release) (core.Release, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fail("CreateRelease", r); err != nil {
		return core.Release{}, err
	}
	r.Number = len(s.releases[r.App]) + 1
	s.releases[r.App] = append(s.releases[r.App], r)
	return r, nil
}

// GetRelease implements deploy.Store.
func (s *Store) GetRelease(ctx context.Context, app string, number int) (core.Release, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rs := s.releases[app]
	if number < 1 || number > len(rs) {
		return core.Release{}, fmt.Errorf("release #%d of %s: %w", number, app, core.ErrNotFound)
	}
	return rs[number-1], nil
}

// ListReleases implements deploy.Store: newest first.
func (s *Store) ListReleases(ctx context.Context, app string, limit int) ([]core.Release, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rs := slices.Clone(s.releases[app])
	slices.Reverse(rs)
	if len(rs) > limit {
		rs = rs[:limit]
	}
	return rs, nil
}

// CreateDeployment implements deploy.Store.
func (s *Store) CreateDeployment(ctx context.Context, d core.Deployment) (core.Deployment, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fail("CreateDeployment", d); err != nil {
		return core.Deployment{}, err
	}
	d.ID = int64(len(s.deployments) + 1)
	s.deployments = append(s.deployments, d)
	return d, nil
}

// UpdateDeployment implements deploy.Store.
func (s *Store) UpdateDeployment(ctx context.Context, d core.Deployment) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d.ID < 1 || d.ID > int64(len(s.deployments)) {
		return fmt.Errorf("deployment %d: %w", d.ID, core.ErrNotFound)
	}
	if err := s.fail("UpdateDeployment", d); err != nil {
		return err
	}
	s.deployments[d.ID-1] = d
	return nil
}

// GetDeployment implements deploy.Store.
func (s *Store) GetDeployment(ctx context.Context, id int64) (core.Deployment, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id < 1 || id > int64(len(s.deployments)) {
		return core.Deployment{}, fmt.Errorf("deployment %d: %w", id, core.ErrNotFound)
	}
	return s.deployments[id-1], nil
}

// ListDeployments implements deploy.Store: newest first.
func (s *Store) ListDeployments(ctx context.Context, app, env string, beforeID int64, limit int) ([]core.Deployment, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []core.Deployment
	for i := len(s.deployments) - 1; i >= 0 && len(out) < limit; i-- {
		d := s.deployments[i]
		if d.App != app || (env != "" && d.Env != env) || (beforeID > 0 && d.ID >= beforeID) {
			continue
		}
		out = append(out, d)
	}
	return out, nil
}

// UnfinishedDeployments implements deploy.Store.
func (s *Store) UnfinishedDeployments(ctx context.Context) ([]core.Deployment, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []core.Deployment
	for _, d := range s.deployments {
		if !d.State.Terminal() {
			out = append(out, d)
		}
	}
	return out, nil
}

// AppendEvent implements deploy.Store.
func (s *Store) AppendEvent(ctx context.Context, e core.Event) (core.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fail("AppendEvent", e); err != nil {
		return core.Event{}, err
	}
	e.ID = int64(len(s.events) + 1)
	s.events = append(s.events, e)
	return e, nil
}

// ListEvents implements deploy.Store.
func (s *Store) ListEvents(ctx context.Context, app string, afterID int64, limit int) ([]core.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []core.Event
	for i := max(afterID, 0); i < int64(len(s.events)) && len(out) < limit; i++ {
		if e := s.events[i]; app == "" || e.App == app {
			out = append(out, e)
		}
	}
	return out, nil
}

// LastEvent implements deploy.Store.
func (s *Store) LastEvent(ctx context.Context, app string, types ...core.EventType) (core.Event, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.events) - 1; i >= 0; i-- {
		if e := s.events[i]; e.App == app && slices.Contains(types, e.Type) {
			return e, true, nil
		}
	}
	return core.Event{}, false, nil
}

// GetCursor implements deploy.Store.
func (s *Store) GetCursor(ctx context.Context, name string) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cursors[name], nil
}

// PutCursor implements deploy.Store.
func (s *Store) PutCursor(ctx context.Context, name string, position int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fail("PutCursor", position); err != nil {
		return err
	}
	s.cursors[name] = position
	return nil
}

// GetEnvState implements deploy.Store.
func (s *Store) GetEnvState(ctx context.Context, app, env string) (core.EnvState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state(app, env)
}

func (s *Store) state(app, env string) (core.EnvState, error) {
	st := core.EnvState{App: app, Env: env, Slots: map[core.Colour]*core.Slot{}}
	if b, ok := s.states[key(app, env)]; ok {
		if err := json.Unmarshal(b, &st); err != nil {
			return st, err
		}
		if st.Slots == nil {
			st.Slots = map[core.Colour]*core.Slot{}
		}
	}
	return st, nil
}

// PutEnvState implements deploy.Store: a compare-and-swap on the version.
func (s *Store) PutEnvState(ctx context.Context, st core.EnvState) (core.EnvState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fail("PutEnvState", st); err != nil {
		return st, err
	}
	cur, err := s.state(st.App, st.Env)
	if err != nil {
		return st, err
	}
	if cur.Version != st.Version {
		return st, fmt.Errorf("state of %s/%s changed since version %d: %w", st.App, st.Env, st.Version, core.ErrConflict)
	}
	st.Version++
	b, err := json.Marshal(st)
	if err != nil {
		st.Version--
		return st, err
	}
	s.states[key(st.App, st.Env)] = b
	return st, nil
}

// ListEnvStates implements deploy.Store.
func (s *Store) ListEnvStates(ctx context.Context, app string) ([]core.EnvState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []core.EnvState
	for k := range s.states {
		var st core.EnvState
		if err := json.Unmarshal(s.states[k], &st); err != nil {
			return nil, err
		}
		if st.App == app {
			if st.Slots == nil {
				st.Slots = map[core.Colour]*core.Slot{}
			}
			out = append(out, st)
		}
	}
	slices.SortFunc(out, func(a, b core.EnvState) int { return cmp.Compare(a.Env, b.Env) })
	return out, nil
}

// TryLock implements deploy.Store.
func (s *Store) TryLock(ctx context.Context, app, env, holder string, ttl time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fail("TryLock", holder); err != nil {
		return err
	}
	k := key(app, env)
	now := time.Now()
	if l, ok := s.locks[k]; ok && l.holder != holder && l.until.After(now) {
		return fmt.Errorf("%w: %s/%s is locked by %s until %s", core.ErrLocked, app, env, l.holder, l.until.Format(time.RFC3339))
	}
	s.locks[k] = lock{holder: holder, until: now.Add(ttl)}
	return nil
}

// Unlock implements deploy.Store.
func (s *Store) Unlock(ctx context.Context, app, env, holder string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key(app, env)
	if l, ok := s.locks[k]; ok && l.holder == holder {
		delete(s.locks, k)
	}
	return nil
}

// LockHolder implements deploy.Store.
func (s *Store) LockHolder(ctx context.Context, app, env string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l, ok := s.locks[key(app, env)]; ok && l.until.After(time.Now()) {
		return l.holder, nil
	}
	return "", nil
}
