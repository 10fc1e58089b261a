package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/cutover/cutover/internal/core"
)

// PutCommitStatus records a CI result; the newest per name replaces the last.
func (s *Store) PutCommitStatus(ctx context.Context, c core.CommitStatus) error {
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO commit_statuses (app, sha, name, state, url, actor, at) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (app, sha, name) DO UPDATE SET state = excluded.state, url = excluded.url, actor = excluded.actor, at = excluded.at`),
		c.App, c.SHA, c.Name, c.State, c.URL, c.By, ns(c.At))
	return err
}

// CommitStatuses returns the CI results of a commit, by name.
func (s *Store) CommitStatuses(ctx context.Context, app, sha string) ([]core.CommitStatus, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT app, sha, name, state, url, actor, at FROM commit_statuses WHERE app = ? AND sha = ? ORDER BY name`), app, sha)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []core.CommitStatus
	for rows.Next() {
		var c core.CommitStatus
		var at int64
		if err := rows.Scan(&c.App, &c.SHA, &c.Name, &c.State, &c.URL, &c.By, &at); err != nil {
			return nil, err
		}
		c.At = fromNS(at)
		out = append(out, c)
	}
	return out, rows.Err()
}

// PutReview records a person's approval of a commit (once per person).
func (s *Store) PutReview(ctx context.Context, r core.Review) error {
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO reviews (app, sha, actor, at) VALUES (?, ?, ?, ?) ON CONFLICT (app, sha, actor) DO NOTHING`),
		r.App, r.SHA, r.By, ns(r.At))
	return err
}

// Reviews returns the reviews of a commit, oldest first.
func (s *Store) Reviews(ctx context.Context, app, sha string) ([]core.Review, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT app, sha, actor, at FROM reviews WHERE app = ? AND sha = ? ORDER BY at`), app, sha)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []core.Review
	for rows.Next() {
		var r core.Review
		var at int64
		if err := rows.Scan(&r.App, &r.SHA, &r.By, &at); err != nil {
			return nil, err
		}
		r.At = fromNS(at)
		out = append(out, r)
	}
	return out, rows.Err()
}

// PutApproval records a person's approval of a release or commit for an env.
func (s *Store) PutApproval(ctx context.Context, a core.Approval) error {
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO approvals (app, env, release, sha, actor, at) VALUES (?, ?, ?, ?, ?, ?)`),
		a.App, a.Env, a.Release, a.SHA, a.By, ns(a.At))
	return err
}

// Approvals returns the approvals for an environment, oldest first.
func (s *Store) Approvals(ctx context.Context, app, env string) ([]core.Approval, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT app, env, release, sha, actor, at FROM approvals WHERE app = ? AND env = ? ORDER BY at`), app, env)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []core.Approval
	for rows.Next() {
		var a core.Approval
		var at int64
		if err := rows.Scan(&a.App, &a.Env, &a.Release, &a.SHA, &a.By, &at); err != nil {
			return nil, err
		}
		a.At = fromNS(at)
		out = append(out, a)
	}
	return out, rows.Err()
}

// PutEnvLock locks an environment (replacing an earlier lock).
func (s *Store) PutEnvLock(ctx context.Context, l core.EnvLock) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO env_locks (app, env, reason, actor, at, automatic) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (app, env) DO UPDATE SET reason = excluded.reason, actor = excluded.actor, at = excluded.at, automatic = excluded.automatic`),
			l.App, l.Env, l.Reason, l.By, ns(l.At), l.Automatic)
		return err
	})
}

// EnvLock returns an environment's lock, ErrNotFound when unlocked.
func (s *Store) EnvLock(ctx context.Context, app, env string) (core.EnvLock, error) {
	l := core.EnvLock{App: app, Env: env}
	var at int64
	err := s.db.QueryRowContext(ctx, s.q(`SELECT reason, actor, at, automatic FROM env_locks WHERE app = ? AND env = ?`), app, env).Scan(&l.Reason, &l.By, &at, &l.Automatic)
	if errors.Is(err, sql.ErrNoRows) {
		return l, fmt.Errorf("%s/%s is not locked: %w", app, env, core.ErrNotFound)
	}
	l.At = fromNS(at)
	return l, err
}

// DeleteEnvLock unlocks an environment; ErrNotFound when it was not locked.
func (s *Store) DeleteEnvLock(ctx context.Context, app, env string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`DELETE FROM env_locks WHERE app = ? AND env = ?`), app, env)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%s/%s is not locked: %w", app, env, core.ErrNotFound)
		}
		return nil
	})
}

// PutPolicy records a new version of an app's policy (numbered by the store).
func (s *Store) PutPolicy(ctx context.Context, p core.PolicyVersion) (core.PolicyVersion, error) {
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := s.serialize(ctx, tx, "policy/"+p.App); err != nil {
			return err
		}
		if err := tx.QueryRowContext(ctx, s.q(`SELECT COALESCE(MAX(version), 0) + 1 FROM policies WHERE app = ?`), p.App).Scan(&p.Version); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO policies (app, version, body, actor, at) VALUES (?, ?, ?, ?, ?)`), p.App, p.Version, p.Body, p.By, ns(p.At))
		return err
	})
	return p, err
}

// Policy returns an app's latest policy, ErrNotFound when none was set.
func (s *Store) Policy(ctx context.Context, app string) (core.PolicyVersion, error) {
	p := core.PolicyVersion{App: app}
	var at int64
	err := s.db.QueryRowContext(ctx, s.q(`SELECT version, body, actor, at FROM policies WHERE app = ? ORDER BY version DESC LIMIT 1`), app).Scan(&p.Version, &p.Body, &p.By, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return p, fmt.Errorf("no policy set for %s: %w", app, core.ErrNotFound)
	}
	p.At = fromNS(at)
	return p, err
}
