// Package sqlstore implements deploy.Store over database/sql for the SQL
// back ends (internal/store/sqlite, internal/store/postgres): the queries
// are written once with ? placeholders and rebound per dialect; what differs
// (placeholders, how a transaction serialises writers, the migration files)
// is in Dialect.
package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/secret"
)

// Dialect is what differs between SQL back ends.
type Dialect struct {
	Name string
	// Dollar rebinds ? placeholders to $1, $2, ... (PostgreSQL).
	Dollar bool
	// Serialize, when set, is run at the start of a write transaction with
	// a key (app, app/env): it makes concurrent writers of the same key wait
	// (PostgreSQL: an advisory transaction lock). SQLite needs none: its
	// write transactions are already exclusive.
	Serialize string
	// UniqueViolation recognises a unique-constraint error.
	UniqueViolation func(error) bool
	// NowMillis is an SQL expression for the database clock in Unix
	// milliseconds: leases expire by it, never by a server's own clock.
	NowMillis string
	// ForShare is appended to the lease read of a fenced write, so a
	// takeover waits for the write's transaction (PostgreSQL: FOR SHARE).
	ForShare string
}

// Store implements deploy.Store over a *sql.DB.
type Store struct {
	db  *sql.DB
	box *secret.Box
	d   Dialect
	// fence, when set, is the lease that writes of deployments, state,
	// events and locks require (see SetFence).
	fence atomic.Pointer[core.Lease]
}

// New returns a Store on db, which Migrate has brought up to date. box
// encrypts secret config values; it may be nil only if no secrets are ever
// stored.
func New(db *sql.DB, box *secret.Box, d Dialect) *Store {
	return &Store{db: db, box: box, d: d}
}

// DB is the underlying database (for benchmarks and tests).
func (s *Store) DB() *sql.DB { return s.db }

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// q rebinds ? placeholders for the dialect.
func (s *Store) q(query string) string {
	if !s.d.Dollar {
		return query
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}

// serialize makes concurrent writers of key wait for each other in tx.
func (s *Store) serialize(ctx context.Context, tx *sql.Tx, key string) error {
	if s.d.Serialize == "" {
		return nil
	}
	_, err := tx.ExecContext(ctx, s.q(s.d.Serialize), key)
	return err
}

// Migrate applies the migration files of dir in fsys (sorted by name, one
// schema version each) that db has not applied yet, so older databases are
// carried forward.
func Migrate(ctx context.Context, db *sql.DB, d Dialect, fsys fs.FS, dir string) error {
	s := &Store{db: db, d: d}
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return err
	}
	names, err := fs.Glob(fsys, dir+"/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	for i, name := range names {
		v := i + 1
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return err
		}
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if err := s.serialize(ctx, tx, "schema"); err != nil {
			tx.Rollback()
			return err
		}
		var current int
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&current); err != nil {
			tx.Rollback()
			return err
		}
		if v <= current {
			tx.Rollback()
			continue
		}
		if _, err := tx.ExecContext(ctx, string(body)); err != nil {
			tx.Rollback()
			return fmt.Errorf("%s: %w", name, err)
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO schema_version (version) VALUES (?)`), v); err != nil {
			tx.Rollback()
			return err
		}
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	return nil
}

func ns(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNS(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func nsPtr(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixNano()
}

func ptrFromNS(n sql.NullInt64) *time.Time {
	if !n.Valid {
		return nil
	}
	t := time.Unix(0, n.Int64).UTC()
	return &t
}

func (s *Store) isUnique(err error) bool {
	return err != nil && s.d.UniqueViolation != nil && s.d.UniqueViolation(err)
}

// CreateApp implements deploy.Store.
func (s *Store) CreateApp(ctx context.Context, a core.App) error {
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO apps (name, repo, created_at) VALUES (?, ?, ?)`), a.Name, a.Repo, ns(a.CreatedAt))
	if s.isUnique(err) {
		return fmt.Errorf("app %s: %w: it already exists", a.Name, core.ErrConflict)
	}
	return err
}

// GetApp implements deploy.Store.
func (s *Store) GetApp(ctx context.Context, name string) (core.App, error) {
	var a core.App
	var created int64
	err := s.db.QueryRowContext(ctx, s.q(`SELECT name, repo, created_at FROM apps WHERE name = ?`), name).Scan(&a.Name, &a.Repo, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return a, core.ErrNotFound
	}
	a.CreatedAt = fromNS(created)
	return a, err
}

// ListApps implements deploy.Store.
func (s *Store) ListApps(ctx context.Context) ([]core.App, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT name, repo, created_at FROM apps ORDER BY name`))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []core.App
	for rows.Next() {
		var a core.App
		var created int64
		if err := rows.Scan(&a.Name, &a.Repo, &created); err != nil {
			return nil, err
		}
		a.CreatedAt = fromNS(created)
		out = append(out, a)
	}
	return out, rows.Err()
}

// DeleteApp implements deploy.Store: in one transaction, every row of the
// app but its events.
func (s *Store) DeleteApp(ctx context.Context, name string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		for _, table := range []string{"hook_secrets", "checks", "candidates", "locks", "env_states", "deployments", "releases", "configs", "artifacts"} {
			if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM `+table+` WHERE app = ?`), name); err != nil {
				return fmt.Errorf("delete %s of %s: %w", table, name, err)
			}
		}
		res, err := tx.ExecContext(ctx, s.q(`DELETE FROM apps WHERE name = ?`), name)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("app %s: %w", name, core.ErrNotFound)
		}
		return nil
	})
}

// PutArtifact implements deploy.Store: artifacts are immutable.
func (s *Store) PutArtifact(ctx context.Context, a core.Artifact) (core.Artifact, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return a, err
	}
	defer tx.Rollback()
	if err := s.serialize(ctx, tx, "artifact/"+a.App); err != nil {
		return a, err
	}
	existing, err := s.getArtifact(ctx, tx, a.App, a.SHA)
	switch {
	case err == nil:
		if existing.Digest != a.Digest {
			return existing, fmt.Errorf("artifact %s of %s: %w: stored digest %s, new build has %s; artifacts are immutable", core.ShortSHA(a.SHA), a.App, core.ErrConflict, existing.Digest, a.Digest)
		}
		return existing, nil
	case !errors.Is(err, core.ErrNotFound):
		return a, err
	}
	_, err = tx.ExecContext(ctx, s.q(`INSERT INTO artifacts (app, sha, digest, path, size, build_log, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`),
		a.App, a.SHA, a.Digest, a.Ref, a.Size, a.BuildLog, ns(a.CreatedAt))
	if err != nil {
		return a, err
	}
	return a, tx.Commit()
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (s *Store) getArtifact(ctx context.Context, q querier, app, sha string) (core.Artifact, error) {
	var a core.Artifact
	var created int64
	err := q.QueryRowContext(ctx, s.q(`SELECT app, sha, digest, path, size, build_log, created_at FROM artifacts WHERE app = ? AND sha = ?`), app, sha).
		Scan(&a.App, &a.SHA, &a.Digest, &a.Ref, &a.Size, &a.BuildLog, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return a, fmt.Errorf("artifact %s of %s: %w", core.ShortSHA(sha), app, core.ErrNotFound)
	}
	a.CreatedAt = fromNS(created)
	return a, err
}

// GetArtifact implements deploy.Store.
func (s *Store) GetArtifact(ctx context.Context, app, sha string) (core.Artifact, error) {
	return s.getArtifact(ctx, s.db, app, sha)
}

// ListArtifacts implements deploy.Store.
// DeleteArtifact implements deploy.Store.
func (s *Store) DeleteArtifact(ctx context.Context, app, sha string) error {
	_, err := s.db.ExecContext(ctx, s.q(`DELETE FROM artifacts WHERE app = ? AND sha = ?`), app, sha)
	return err
}

func (s *Store) ListArtifacts(ctx context.Context, app string, limit int) ([]core.Artifact, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT app, sha, digest, path, size, build_log, created_at FROM artifacts WHERE app = ? ORDER BY created_at DESC LIMIT ?`), app, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []core.Artifact
	for rows.Next() {
		var a core.Artifact
		var created int64
		if err := rows.Scan(&a.App, &a.SHA, &a.Digest, &a.Ref, &a.Size, &a.BuildLog, &created); err != nil {
			return nil, err
		}
		a.CreatedAt = fromNS(created)
		out = append(out, a)
	}
	return out, rows.Err()
}

// PutConfig implements deploy.Store.
func (s *Store) PutConfig(ctx context.Context, app, env string, vars, secrets map[string]string) (core.ConfigVersion, error) {
	if vars == nil {
		vars = map[string]string{}
	}
	sealed := map[string]string{}
	for k, v := range secrets {
		if s.box == nil {
			return core.ConfigVersion{}, errors.New("store has no secret key: cannot store secrets")
		}
		enc, err := s.box.Seal([]byte(v))
		if err != nil {
			return core.ConfigVersion{}, err
		}
		sealed[k] = enc
	}
	vj, _ := json.Marshal(vars)
	sj, _ := json.Marshal(sealed)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return core.ConfigVersion{}, err
	}
	defer tx.Rollback()
	if err := s.serialize(ctx, tx, "config/"+app+"/"+env); err != nil {
		return core.ConfigVersion{}, err
	}
	var v int
	if err := tx.QueryRowContext(ctx, s.q(`SELECT COALESCE(MAX(version), 0) + 1 FROM configs WHERE app = ? AND env = ?`), app, env).Scan(&v); err != nil {
		return core.ConfigVersion{}, err
	}
	now := time.Now().UTC()
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO configs (app, env, version, vars, secrets, created_at) VALUES (?, ?, ?, ?, ?, ?)`), app, env, v, vj, sj, ns(now)); err != nil {
		return core.ConfigVersion{}, err
	}
	if err := tx.Commit(); err != nil {
		return core.ConfigVersion{}, err
	}
	return core.ConfigVersion{App: app, Env: env, Version: v, Vars: vars, SecretKeys: sortedKeys(secrets), CreatedAt: now}, nil
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (s *Store) config(ctx context.Context, app, env string, version int) (core.ConfigVersion, map[string]string, error) {
	q := `SELECT version, vars, secrets, created_at FROM configs WHERE app = ? AND env = ? AND version = ?`
	args := []any{app, env, version}
	if version == 0 {
		q = `SELECT version, vars, secrets, created_at FROM configs WHERE app = ? AND env = ? ORDER BY version DESC LIMIT 1`
		args = args[:2]
	}
	cv := core.ConfigVersion{App: app, Env: env, Vars: map[string]string{}}
	var vj, sj string
	var created int64
	err := s.db.QueryRowContext(ctx, s.q(q), args...).Scan(&cv.Version, &vj, &sj, &created)
	if errors.Is(err, sql.ErrNoRows) {
		if version == 0 {
			return cv, map[string]string{}, nil
		}
		return cv, nil, fmt.Errorf("config v%d of %s/%s: %w", version, app, env, core.ErrNotFound)
	}
	if err != nil {
		return cv, nil, err
	}
	cv.CreatedAt = fromNS(created)
	sealed := map[string]string{}
	if err := json.Unmarshal([]byte(vj), &cv.Vars); err != nil {
		return cv, nil, err
	}
	if err := json.Unmarshal([]byte(sj), &sealed); err != nil {
		return cv, nil, err
	}
	cv.SecretKeys = sortedKeys(sealed)
	return cv, sealed, nil
}

// GetConfig implements deploy.Store. Secret values are never returned here.
func (s *Store) GetConfig(ctx context.Context, app, env string, version int) (core.ConfigVersion, error) {
	cv, _, err := s.config(ctx, app, env, version)
	return cv, err
}

// GetConfigSecrets implements deploy.Store.
func (s *Store) GetConfigSecrets(ctx context.Context, app, env string, version int) (map[string]string, error) {
	_, sealed, err := s.config(ctx, app, env, version)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(sealed))
	for k, v := range sealed {
		if s.box == nil {
			return nil, errors.New("store has no secret key: cannot open secrets")
		}
		pt, err := s.box.Open(v)
		if err != nil {
			return nil, fmt.Errorf("secret %s of %s/%s: %w", k, app, env, err)
		}
		out[k] = string(pt)
	}
	return out, nil
}

// CreateRelease implements deploy.Store: the number is the next for the app.
func (s *Store) CreateRelease(ctx context.Context, r core.Release) (core.Release, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return r, err
	}
	defer tx.Rollback()
	if err := s.serialize(ctx, tx, "release/"+r.App); err != nil {
		return r, err
	}
	if err := tx.QueryRowContext(ctx, s.q(`SELECT COALESCE(MAX(number), 0) + 1 FROM releases WHERE app = ?`), r.App).Scan(&r.Number); err != nil {
		return r, err
	}
	if r.CreatedAt.IsZero() {
		r.CreatedAt = time.Now().UTC()
	}
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO releases (app, number, env, sha, digest, config_version, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`),
		r.App, r.Number, r.Env, r.SHA, r.Digest, r.ConfigVersion, ns(r.CreatedAt)); err != nil {
		return r, err
	}
	return r, tx.Commit()
}

const releaseCols = `app, number, env, sha, digest, config_version, created_at`

func scanRelease(sc interface{ Scan(...any) error }) (core.Release, error) {
	var r core.Release
	var created int64
	err := sc.Scan(&r.App, &r.Number, &r.Env, &r.SHA, &r.Digest, &r.ConfigVersion, &created)
	r.CreatedAt = fromNS(created)
	return r, err
}

// GetRelease implements deploy.Store.
func (s *Store) GetRelease(ctx context.Context, app string, number int) (core.Release, error) {
	r, err := scanRelease(s.db.QueryRowContext(ctx, s.q(`SELECT `+releaseCols+` FROM releases WHERE app = ? AND number = ?`), app, number))
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("release #%d of %s: %w", number, app, core.ErrNotFound)
	}
	return r, err
}

// ListReleases implements deploy.Store.
func (s *Store) ListReleases(ctx context.Context, app string, limit int) ([]core.Release, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT `+releaseCols+` FROM releases WHERE app = ? ORDER BY number DESC LIMIT ?`), app, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []core.Release
	for rows.Next() {
		r, err := scanRelease(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

const deploymentCols = `id, app, env, kind, release, previous_release, sha, colour, state, step, reason, requested_by, created_at, updated_at, switched_at, finished_at, waiting_on, wait_until, replace_held, instances, options`

func scanDeployment(sc interface{ Scan(...any) error }) (core.Deployment, error) {
	var d core.Deployment
	var created, updated int64
	var switched, finished, until sql.NullInt64
	var instances, options string
	err := sc.Scan(&d.ID, &d.App, &d.Env, &d.Kind, &d.Release, &d.PreviousRelease, &d.SHA, &d.Colour, &d.State, &d.Step, &d.Reason, &d.RequestedBy, &created, &updated, &switched, &finished, &d.WaitingOn, &until, &d.ReplaceHeld, &instances, &options)
	if options != "" {
		_ = json.Unmarshal([]byte(options), &d.Options)
	}
	if instances != "" {
		d.Instances = strings.Split(instances, ",")
	}
	d.CreatedAt, d.UpdatedAt = fromNS(created), fromNS(updated)
	d.SwitchedAt, d.FinishedAt, d.WaitUntil = ptrFromNS(switched), ptrFromNS(finished), ptrFromNS(until)
	return d, err
}

// CreateDeployment implements deploy.Store.
func (s *Store) CreateDeployment(ctx context.Context, d core.Deployment) (core.Deployment, error) {
	err := s.write(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, s.q(`INSERT INTO deployments (app, env, kind, release, previous_release, sha, colour, state, step, reason, requested_by, created_at, updated_at, switched_at, finished_at, waiting_on, wait_until, replace_held, instances, options)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`),
			d.App, d.Env, d.Kind, d.Release, d.PreviousRelease, d.SHA, d.Colour, d.State, d.Step, d.Reason, d.RequestedBy,
			ns(d.CreatedAt), ns(d.UpdatedAt), nsPtr(d.SwitchedAt), nsPtr(d.FinishedAt), d.WaitingOn, nsPtr(d.WaitUntil), d.ReplaceHeld, strings.Join(d.Instances, ","), optionsJSON(d.Options)).Scan(&d.ID)
	})
	return d, err
}

// UpdateDeployment implements deploy.Store.
func (s *Store) UpdateDeployment(ctx context.Context, d core.Deployment) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`UPDATE deployments SET kind = ?, release = ?, previous_release = ?, sha = ?, colour = ?, state = ?, step = ?, reason = ?,
		requested_by = ?, updated_at = ?, switched_at = ?, finished_at = ?, waiting_on = ?, wait_until = ?, instances = ? WHERE id = ?`),
			d.Kind, d.Release, d.PreviousRelease, d.SHA, d.Colour, d.State, d.Step, d.Reason, d.RequestedBy, ns(d.UpdatedAt), nsPtr(d.SwitchedAt), nsPtr(d.FinishedAt),
			d.WaitingOn, nsPtr(d.WaitUntil), strings.Join(d.Instances, ","), d.ID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("deployment %d: %w", d.ID, core.ErrNotFound)
		}
		return nil
	})
}

// GetDeployment implements deploy.Store.
func (s *Store) GetDeployment(ctx context.Context, id int64) (core.Deployment, error) {
	d, err := scanDeployment(s.db.QueryRowContext(ctx, s.q(`SELECT `+deploymentCols+` FROM deployments WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return d, fmt.Errorf("deployment %d: %w", id, core.ErrNotFound)
	}
	return d, err
}

// ListDeployments implements deploy.Store: newest first, keyset paging by id.
func (s *Store) ListDeployments(ctx context.Context, app, env string, beforeID int64, limit int) ([]core.Deployment, error) {
	q := `SELECT ` + deploymentCols + ` FROM deployments WHERE app = ?`
	args := []any{app}
	if env != "" {
		q += ` AND env = ?`
		args = append(args, env)
	}
	if beforeID > 0 {
		q += ` AND id < ?`
		args = append(args, beforeID)
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, limit)
	return s.deployments(ctx, q, args...)
}

func (s *Store) deployments(ctx context.Context, q string, args ...any) ([]core.Deployment, error) {
	rows, err := s.db.QueryContext(ctx, s.q(q), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []core.Deployment
	for rows.Next() {
		d, err := scanDeployment(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// UnfinishedDeployments implements deploy.Store.
func (s *Store) UnfinishedDeployments(ctx context.Context) ([]core.Deployment, error) {
	return s.deployments(ctx, `SELECT `+deploymentCols+` FROM deployments WHERE state IN ('waiting', 'pending', 'running') ORDER BY id`)
}

// AppendEvent implements deploy.Store.
func (s *Store) AppendEvent(ctx context.Context, e core.Event) (core.Event, error) {
	err := s.write(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, s.q(`INSERT INTO events (app, env, deployment_id, time, type, step, release, sha, state, reason, actor, message)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`),
			e.App, e.Env, e.DeploymentID, ns(e.Time), e.Type, e.Step, e.Release, e.SHA, e.State, e.Reason, e.Actor, e.Message).Scan(&e.ID)
	})
	return e, err
}

// ListEvents implements deploy.Store.
func (s *Store) ListEvents(ctx context.Context, app string, afterID int64, limit int) ([]core.Event, error) {
	q := `SELECT ` + eventCols + ` FROM events WHERE id > ?`
	args := []any{afterID}
	if app != "" {
		q += ` AND app = ?`
		args = append(args, app)
	}
	q += ` ORDER BY id LIMIT ?`
	args = append(args, limit)
	rows, err := s.db.QueryContext(ctx, s.q(q), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []core.Event
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// eventCols are the columns scanEvent reads, in its order.
const eventCols = `id, app, env, deployment_id, time, type, step, release, sha, state, reason, actor, message`

func scanEvent(row interface{ Scan(...any) error }) (core.Event, error) {
	var e core.Event
	var t int64
	err := row.Scan(&e.ID, &e.App, &e.Env, &e.DeploymentID, &t, &e.Type, &e.Step, &e.Release, &e.SHA, &e.State, &e.Reason, &e.Actor, &e.Message)
	e.Time = fromNS(t)
	return e, err
}

// LastEvent implements deploy.Store.
func (s *Store) LastEvent(ctx context.Context, app string, types ...core.EventType) (core.Event, bool, error) {
	if len(types) == 0 {
		return core.Event{}, false, nil
	}
	q := `SELECT ` + eventCols + ` FROM events WHERE app = ? AND type IN (?` +
		strings.Repeat(", ?", len(types)-1) + `) ORDER BY id DESC LIMIT 1`
	args := []any{app}
	for _, t := range types {
		args = append(args, t)
	}
	e, err := scanEvent(s.db.QueryRowContext(ctx, s.q(q), args...))
	if errors.Is(err, sql.ErrNoRows) {
		return core.Event{}, false, nil
	}
	if err != nil {
		return core.Event{}, false, err
	}
	return e, true, nil
}

// GetEnvState implements deploy.Store.
func (s *Store) GetEnvState(ctx context.Context, app, env string) (core.EnvState, error) {
	var raw string
	var version int64
	err := s.db.QueryRowContext(ctx, s.q(`SELECT state, version FROM env_states WHERE app = ? AND env = ?`), app, env).Scan(&raw, &version)
	if errors.Is(err, sql.ErrNoRows) {
		return core.EnvState{App: app, Env: env, Slots: map[core.Colour]*core.Slot{}}, nil
	}
	if err != nil {
		return core.EnvState{}, err
	}
	var st core.EnvState
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		return st, fmt.Errorf("state of %s/%s: %w", app, env, err)
	}
	if st.Slots == nil {
		st.Slots = map[core.Colour]*core.Slot{}
	}
	st.App, st.Env, st.Version = app, env, version
	return st, nil
}

// ListEnvStates implements deploy.Store.
func (s *Store) ListEnvStates(ctx context.Context, app string) ([]core.EnvState, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT env FROM env_states WHERE app = ? ORDER BY env`), app)
	if err != nil {
		return nil, err
	}
	var envs []string
	for rows.Next() {
		var env string
		if err := rows.Scan(&env); err != nil {
			rows.Close()
			return nil, err
		}
		envs = append(envs, env)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make([]core.EnvState, 0, len(envs))
	for _, env := range envs {
		st, err := s.GetEnvState(ctx, app, env)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// PutEnvState implements deploy.Store: a compare-and-swap on the version.
func (s *Store) PutEnvState(ctx context.Context, st core.EnvState) (core.EnvState, error) {
	expected := st.Version
	st.Version = expected + 1
	b, err := json.Marshal(st)
	if err != nil {
		return st, err
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		if expected == 0 {
			_, err := tx.ExecContext(ctx, s.q(`INSERT INTO env_states (app, env, state, version) VALUES (?, ?, ?, 1)`), st.App, st.Env, string(b))
			if s.isUnique(err) {
				return fmt.Errorf("state of %s/%s was written by someone else: %w", st.App, st.Env, core.ErrConflict)
			}
			return err
		}
		res, err := tx.ExecContext(ctx, s.q(`UPDATE env_states SET state = ?, version = ? WHERE app = ? AND env = ? AND version = ?`), string(b), st.Version, st.App, st.Env, expected)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("state of %s/%s changed since version %d: %w", st.App, st.Env, expected, core.ErrConflict)
		}
		return nil
	})
	if err != nil {
		st.Version = expected
	}
	return st, err
}

// TryLock implements deploy.Store.
func (s *Store) TryLock(ctx context.Context, app, env, holder string, ttl time.Duration) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := s.checkFence(ctx, tx); err != nil {
		return err
	}
	if err := s.serialize(ctx, tx, "lock/"+app+"/"+env); err != nil {
		return err
	}
	now := time.Now()
	var cur string
	var exp int64
	err = tx.QueryRowContext(ctx, s.q(`SELECT holder, expires_at FROM locks WHERE app = ? AND env = ?`), app, env).Scan(&cur, &exp)
	if err == nil && cur != holder && exp > now.UnixNano() {
		return fmt.Errorf("%w: %s/%s is locked by %s until %s", core.ErrLocked, app, env, cur, fromNS(exp).Format(time.RFC3339))
	}
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO locks (app, env, holder, expires_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (app, env) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at`), app, env, holder, now.Add(ttl).UnixNano()); err != nil {
		return err
	}
	return tx.Commit()
}

// Unlock implements deploy.Store; only the holder can unlock.
func (s *Store) Unlock(ctx context.Context, app, env, holder string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.q(`DELETE FROM locks WHERE app = ? AND env = ? AND holder = ?`), app, env, holder)
		return err
	})
}

// LockHolder implements deploy.Store.
func (s *Store) LockHolder(ctx context.Context, app, env string) (string, error) {
	var holder string
	var exp int64
	err := s.db.QueryRowContext(ctx, s.q(`SELECT holder, expires_at FROM locks WHERE app = ? AND env = ?`), app, env).Scan(&holder, &exp)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && exp <= time.Now().UnixNano()) {
		return "", nil
	}
	return holder, err
}

// BulkDeployments inserts n finished deployments for app, spread over envs,
// in one transaction. It exists for benchmarks of the history queries.
func BulkDeployments(ctx context.Context, s *Store, app string, envs []string, n int) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, s.q(`INSERT INTO deployments (app, env, kind, release, previous_release, sha, colour, state, step, reason, requested_by, created_at, updated_at, finished_at)
		VALUES (?, ?, 'deploy', ?, ?, ?, 'blue', 'succeeded', 'done', '', 'bench', ?, ?, ?)`))
	if err != nil {
		return err
	}
	defer stmt.Close()
	t := time.Now().Add(-time.Duration(n) * time.Minute)
	sha := strings.Repeat("ab", 20)
	for i := range n {
		at := t.Add(time.Duration(i) * time.Minute).UnixNano()
		if _, err := stmt.ExecContext(ctx, app, envs[i%len(envs)], i+1, i, sha, at, at, at); err != nil {
			return err
		}
	}
	return tx.Commit()
}

func optionsJSON(o core.DeployOptions) string {
	if o == (core.DeployOptions{}) {
		return ""
	}
	b, _ := json.Marshal(o)
	return string(b)
}
