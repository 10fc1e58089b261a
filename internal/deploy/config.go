package deploy

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/manifest"
)

// ConfigChange is one change to an environment's config. By default it is
// merged into the latest version: the keys given are set (a key given as a
// plain value that was a secret becomes a plain value, and the reverse),
// the keys in Unset are removed, every other key and secret is kept.
type ConfigChange struct {
	Vars    map[string]string `json:"vars,omitempty"`
	Secrets map[string]string `json:"secrets,omitempty"` // plain values; stored encrypted, never returned
	Unset   []string          `json:"unset,omitempty"`   // keys to remove; each must be set
	// Replace makes Vars and Secrets the whole new version.
	Replace bool   `json:"replace,omitempty"`
	Actor   string `json:"-"`
}

// ConfigResult is a recorded config version and what changed from the
// previous one: key names only, secrets marked "(secret)".
type ConfigResult struct {
	core.ConfigVersion
	Added   []string `json:"added"`
	Changed []string `json:"changed"`
	Removed []string `json:"removed"`
	// Unchanged: nothing differed from the latest version, so no version
	// was recorded and ConfigVersion is the latest.
	Unchanged bool `json:"unchanged,omitempty"`
}

// Summary renders the change for people and for the config.set event's
// Reason: "added: A, B; changed: C; removed: D (secret)".
func (r ConfigResult) Summary() string {
	var parts []string
	for _, p := range []struct {
		name string
		keys []string
	}{{"added", r.Added}, {"changed", r.Changed}, {"removed", r.Removed}} {
		if len(p.keys) > 0 {
			parts = append(parts, p.name+": "+strings.Join(p.keys, ", "))
		}
	}
	if len(parts) == 0 {
		return "no changes"
	}
	return strings.Join(parts, "; ")
}

// configMu serialises the read-merge-write of config changes. Only the
// server holding the lease accepts changes, so one process suffices; two
// changes at once must not both build on the same latest version.
var configMu sync.Mutex

// SetConfig merges vars and secrets into the latest config version of app
// in env (see ChangeConfig).
func (s *Service) SetConfig(ctx context.Context, app, env string, vars, secrets map[string]string) (core.ConfigVersion, error) {
	r, err := s.ChangeConfig(ctx, app, env, ConfigChange{Vars: vars, Secrets: secrets})
	return r.ConfigVersion, err
}

// ChangeConfig records a new config version for app in env. The secrets
// of the latest version are carried over server-side; no answer ever holds
// a secret value. The new version takes effect with the next deployment (a
// config-only deploy of the live commit makes a new release).
func (s *Service) ChangeConfig(ctx context.Context, app, env string, ch ConfigChange) (ConfigResult, error) {
	a, err := s.App(ctx, app)
	if err != nil {
		return ConfigResult{}, err
	}
	if err := s.checkConfigEnv(ctx, a, env); err != nil {
		return ConfigResult{}, err
	}
	if err := validateChange(ch); err != nil {
		return ConfigResult{}, err
	}

	configMu.Lock()
	defer configMu.Unlock()
	old, err := s.cfg.Store.GetConfig(ctx, app, env, 0)
	if err != nil {
		return ConfigResult{}, fmt.Errorf("config of %s/%s: %w", app, env, err)
	}
	oldSecrets := map[string]string{}
	if old.Version > 0 && len(old.SecretKeys) > 0 {
		if oldSecrets, err = s.cfg.Store.GetConfigSecrets(ctx, app, env, old.Version); err != nil {
			return ConfigResult{}, fmt.Errorf("config secrets v%d of %s/%s: %w", old.Version, app, env, err)
		}
	}

	vars, secrets := map[string]string{}, map[string]string{}
	if !ch.Replace {
		maps.Copy(vars, old.Vars)
		maps.Copy(secrets, oldSecrets)
	}
	for _, k := range ch.Unset {
		if _, ok := vars[k]; !ok {
			if _, ok := secrets[k]; !ok {
				return ConfigResult{}, fmt.Errorf("%w: config key %q is not set in %s/%s (set: %s)", core.ErrNotFound, k, app, env, keyList(vars, secrets))
			}
		}
		delete(vars, k)
		delete(secrets, k)
	}
	for k, v := range ch.Vars {
		delete(secrets, k)
		vars[k] = v
	}
	for k, v := range ch.Secrets {
		delete(vars, k)
		secrets[k] = v
	}
	if err := checkConfigBounds(vars, secrets); err != nil {
		return ConfigResult{}, err
	}

	res := diffConfig(old.Vars, oldSecrets, vars, secrets, ch.Secrets)
	if len(res.Added)+len(res.Changed)+len(res.Removed) == 0 && old.Version > 0 {
		res.ConfigVersion, res.Unchanged = old, true
		return res, nil
	}
	cv, err := s.cfg.Store.PutConfig(ctx, app, env, vars, secrets)
	if err != nil {
		return ConfigResult{}, fmt.Errorf("config of %s/%s: %w", app, env, err)
	}
	res.ConfigVersion = cv
	summary := res.Summary()
	s.emit(ctx, core.Event{App: app, Env: env, Type: core.EventConfigSet, Actor: ch.Actor, Reason: summary,
		Message: fmt.Sprintf("config v%d for %s: %s", cv.Version, env, summary)})
	return res, nil
}

// Config returns a config version of app in env (0 = the latest), secret
// names only.
func (s *Service) Config(ctx context.Context, app, env string, version int) (core.ConfigVersion, error) {
	a, err := s.App(ctx, app)
	if err != nil {
		return core.ConfigVersion{}, err
	}
	if err := core.ValidateName("env", env); err != nil {
		return core.ConfigVersion{}, err
	}
	if version < 0 {
		return core.ConfigVersion{}, fmt.Errorf("%w: config version %d: want 1 or more (0 for the latest)", core.ErrInvalid, version)
	}
	cv, err := s.cfg.Store.GetConfig(ctx, app, env, version)
	if err != nil {
		return cv, err
	}
	if cv.Version == 0 {
		// No config at all: a misspelt environment says so rather than
		// showing an empty config.
		if err := s.checkConfigEnv(ctx, a, env); err != nil {
			return core.ConfigVersion{}, err
		}
	}
	return cv, nil
}

// checkConfigEnv refuses an environment that is not in the manifest at the
// head of the app's repository.
func (s *Service) checkConfigEnv(ctx context.Context, app core.App, env string) error {
	if err := core.ValidateName("env", env); err != nil {
		return err
	}
	sha, err := s.resolve(ctx, app, "HEAD")
	if err != nil {
		return err
	}
	m, err := s.manifestAt(ctx, app, sha)
	if err != nil {
		return err
	}
	if _, ok := m.Env(env); !ok {
		return fmt.Errorf("%w: env %q is not in %s of %s at HEAD (environments: %s)", core.ErrNotFound, env, manifest.FileName, app.Name, envNames(m))
	}
	return nil
}

func validateChange(ch ConfigChange) error {
	if len(ch.Vars)+len(ch.Secrets)+len(ch.Unset) == 0 {
		return fmt.Errorf("%w: no config keys given: want KEY=VALUE pairs or secrets to set, or keys to unset", core.ErrInvalid)
	}
	if ch.Replace && len(ch.Unset) > 0 {
		return fmt.Errorf("%w: a replacement cannot also unset keys: leave them out", core.ErrInvalid)
	}
	for k, v := range ch.Vars {
		if _, ok := ch.Secrets[k]; ok {
			return fmt.Errorf("%w: config key %q is given both as a plain value and as a secret", core.ErrInvalid, k)
		}
		if err := ValidateConfigValue(k, v, false); err != nil {
			return err
		}
	}
	for k, v := range ch.Secrets {
		if err := ValidateConfigValue(k, v, true); err != nil {
			return err
		}
	}
	for _, k := range ch.Unset {
		if err := validateEnvKey(k); err != nil {
			return err
		}
		_, inVars := ch.Vars[k]
		_, inSecrets := ch.Secrets[k]
		if inVars || inSecrets {
			return fmt.Errorf("%w: config key %q is both set and unset", core.ErrInvalid, k)
		}
	}
	return nil
}

// ValidateConfigValue checks one key and its value: values are UTF-8 text
// without NUL bytes (a process environment cannot hold them), and secrets
// are at least MinSecretLen bytes, so that logs can be redacted of them.
// Errors name the key, never the value.
func ValidateConfigValue(key, value string, secret bool) error {
	if err := validateEnvKey(key); err != nil {
		return err
	}
	what := "value"
	if secret {
		what = "secret value"
	}
	if !utf8.ValidString(value) {
		return fmt.Errorf("%w: config key %q: %s is not valid UTF-8 (want UTF-8 text without NUL bytes)", core.ErrInvalid, key, what)
	}
	if strings.IndexByte(value, 0) >= 0 {
		return fmt.Errorf("%w: config key %q: %s holds a NUL byte (want UTF-8 text without NUL bytes)", core.ErrInvalid, key, what)
	}
	if secret && len(value) < MinSecretLen {
		return fmt.Errorf("%w: config key %q: secret value is %d bytes, want at least %d (a shorter one could not be redacted from logs)", core.ErrInvalid, key, len(value), MinSecretLen)
	}
	return nil
}

func validateEnvKey(k string) error {
	if k == "" || len(k) > 128 {
		return fmt.Errorf("%w: config key %q: want 1-128 characters", core.ErrInvalid, k)
	}
	for i, c := range k {
		ok := c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (i > 0 && c >= '0' && c <= '9')
		if !ok {
			return fmt.Errorf("%w: config key %q: use letters, digits and '_', not starting with a digit", core.ErrInvalid, k)
		}
	}
	if strings.HasPrefix(k, "CUTOVER_") || k == "PORT" {
		return fmt.Errorf("%w: config key %q is set by cutover", core.ErrInvalid, k)
	}
	return nil
}

// checkConfigBounds checks the whole new version: its size, and that every
// secret it carries (old ones included) can be redacted.
func checkConfigBounds(vars, secrets map[string]string) error {
	if n := len(vars) + len(secrets); n > MaxConfigVars {
		return fmt.Errorf("%w: %d config keys, at most %d", core.ErrInvalid, n, MaxConfigVars)
	}
	size := 0
	for _, m := range []map[string]string{vars, secrets} {
		for k, v := range m {
			size += len(k) + len(v)
		}
	}
	if size > MaxConfigSize {
		return fmt.Errorf("%w: config is %d bytes, at most %d", core.ErrInvalid, size, MaxConfigSize)
	}
	for _, k := range slices.Sorted(maps.Keys(secrets)) {
		if len(secrets[k]) < MinSecretLen {
			return fmt.Errorf("%w: secret %q of the latest version is %d bytes, want at least %d (it could not be redacted from logs): set it again with a longer value, or unset it", core.ErrInvalid, k, len(secrets[k]), MinSecretLen)
		}
	}
	return nil
}

// diffConfig names the keys added, changed and removed. A secret given
// again counts as changed whatever its value, so an answer never tells
// whether a guessed value was right.
func diffConfig(oldVars, oldSecrets, vars, secrets, given map[string]string) ConfigResult {
	r := ConfigResult{Added: []string{}, Changed: []string{}, Removed: []string{}}
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		if ov, ok := oldVars[k]; ok {
			if ov != vars[k] {
				r.Changed = append(r.Changed, k)
			}
		} else if _, ok := oldSecrets[k]; ok {
			r.Changed = append(r.Changed, k+" (was secret)")
		} else {
			r.Added = append(r.Added, k)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(secrets)) {
		_, wasVar := oldVars[k]
		_, wasSecret := oldSecrets[k]
		_, isGiven := given[k]
		switch {
		case wasVar || (wasSecret && isGiven):
			r.Changed = append(r.Changed, k+" (secret)")
		case !wasSecret:
			r.Added = append(r.Added, k+" (secret)")
		}
	}
	for _, k := range slices.Sorted(maps.Keys(oldVars)) {
		if _, ok := vars[k]; !ok {
			if _, ok := secrets[k]; !ok {
				r.Removed = append(r.Removed, k)
			}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(oldSecrets)) {
		if _, ok := vars[k]; !ok {
			if _, ok := secrets[k]; !ok {
				r.Removed = append(r.Removed, k+" (secret)")
			}
		}
	}
	slices.Sort(r.Added)
	slices.Sort(r.Changed)
	slices.Sort(r.Removed)
	return r
}

func keyList(vars, secrets map[string]string) string {
	keys := slices.Sorted(maps.Keys(vars))
	for _, k := range slices.Sorted(maps.Keys(secrets)) {
		keys = append(keys, k+" (secret)")
	}
	if len(keys) == 0 {
		return "none"
	}
	return strings.Join(keys, ", ")
}
