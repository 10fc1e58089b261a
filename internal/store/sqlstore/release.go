package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/cutover/cutover/internal/core"
)

const candidateCols = `app, number, patch, version, branch, base, head, merge_sha, tag, notes, state, created_at, finished_at`

func scanCandidate(sc interface{ Scan(...any) error }) (core.Candidate, error) {
	var c core.Candidate
	var created int64
	var finished sql.NullInt64
	err := sc.Scan(&c.App, &c.Number, &c.Patch, &c.Version, &c.Branch, &c.Base, &c.Head, &c.Merge, &c.Tag, &c.Notes, &c.State, &created, &finished)
	c.CreatedAt, c.FinishedAt = fromNS(created), ptrFromNS(finished)
	return c, err
}

// CreateCandidate implements deploy.Store.
func (s *Store) CreateCandidate(ctx context.Context, c core.Candidate) (core.Candidate, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return c, err
	}
	defer tx.Rollback()
	if err := s.serialize(ctx, tx, "candidate/"+c.App); err != nil {
		return c, err
	}
	var last int
	if err := tx.QueryRowContext(ctx, s.q(`SELECT COALESCE(MAX(number), 0) FROM candidates WHERE app = ?`), c.App).Scan(&last); err != nil {
		return c, err
	}
	// c.Number and c.Patch, when set, are floors: the caller knows of
	// releases the store does not (the repository's existing tags).
	if c.Patch > 0 {
		last = max(last, c.Number)
		if last == 0 {
			return c, fmt.Errorf("%w: %s has no full release yet to patch", core.ErrInvalid, c.App)
		}
		var next int
		if err := tx.QueryRowContext(ctx, s.q(`SELECT COALESCE(MAX(patch), 0) + 1 FROM candidates WHERE app = ? AND number = ?`), c.App, last).Scan(&next); err != nil {
			return c, err
		}
		c.Number, c.Patch = last, max(next, c.Patch)
	} else {
		c.Number = max(last+1, c.Number)
	}
	if c.CreatedAt.IsZero() {
		c.CreatedAt = time.Now().UTC()
	}
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO candidates (`+candidateCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		c.App, c.Number, c.Patch, c.Version, c.Branch, c.Base, c.Head, c.Merge, c.Tag, c.Notes, c.State, ns(c.CreatedAt), nsPtr(c.FinishedAt)); err != nil {
		return c, err
	}
	return c, tx.Commit()
}

// UpdateCandidate implements deploy.Store.
func (s *Store) UpdateCandidate(ctx context.Context, c core.Candidate) error {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE candidates SET version = ?, branch = ?, base = ?, head = ?, merge_sha = ?, tag = ?, notes = ?, state = ?, finished_at = ?
		WHERE app = ? AND number = ? AND patch = ?`),
		c.Version, c.Branch, c.Base, c.Head, c.Merge, c.Tag, c.Notes, c.State, nsPtr(c.FinishedAt), c.App, c.Number, c.Patch)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%s of %s: %w", c.Label(), c.App, core.ErrNotFound)
	}
	return nil
}

// GetCandidate implements deploy.Store.
func (s *Store) GetCandidate(ctx context.Context, app string, number, patch int) (core.Candidate, error) {
	c, err := scanCandidate(s.db.QueryRowContext(ctx, s.q(`SELECT `+candidateCols+` FROM candidates WHERE app = ? AND number = ? AND patch = ?`), app, number, patch))
	if errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("%s of %s: %w", core.Candidate{Number: number, Patch: patch}.Label(), app, core.ErrNotFound)
	}
	return c, err
}

// ListCandidates implements deploy.Store.
func (s *Store) ListCandidates(ctx context.Context, app string, limit int) ([]core.Candidate, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT `+candidateCols+` FROM candidates WHERE app = ? ORDER BY number DESC, patch DESC LIMIT ?`), app, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []core.Candidate
	for rows.Next() {
		c, err := scanCandidate(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// PutCheck implements deploy.Store.
func (s *Store) PutCheck(ctx context.Context, c core.Check) error {
	passed := 0
	if c.Passed {
		passed = 1
	}
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO checks (app, sha, env, name, passed, detail, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (app, sha, env, name) DO UPDATE SET passed = excluded.passed, detail = excluded.detail, created_at = excluded.created_at`),
		c.App, c.SHA, c.Env, c.Name, passed, c.Detail, ns(c.CreatedAt))
	return err
}

// GetCheck implements deploy.Store.
func (s *Store) GetCheck(ctx context.Context, app, sha, env, name string) (core.Check, error) {
	c := core.Check{App: app, SHA: sha, Env: env, Name: name}
	var passed int
	var created int64
	err := s.db.QueryRowContext(ctx, s.q(`SELECT passed, detail, created_at FROM checks WHERE app = ? AND sha = ? AND env = ? AND name = ?`), app, sha, env, name).Scan(&passed, &c.Detail, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("check %s of %s in %s: %w", name, core.ShortSHA(sha), env, core.ErrNotFound)
	}
	c.Passed, c.CreatedAt = passed == 1, fromNS(created)
	return c, err
}
