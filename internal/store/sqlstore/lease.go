package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/cutover/cutover/internal/core"
)

// Fenced returns a Store whose writes of deployments, environment state,
// events and locks succeed only while lease l is still the stored one: a
// server that lost its lease (paused, partitioned) cannot write after
// another server took over, whatever it still believes.
func (s *Store) Fenced(l core.Lease) *Store {
	c := &Store{db: s.db, box: s.box, d: s.d}
	c.fence.Store(&l)
	return c
}

// SetFence makes this store's fenced writes require lease l from now on
// (nil: no fence). A server fences its store with a lease it cannot hold
// until it takes the real one, so nothing it writes before counts.
func (s *Store) SetFence(l *core.Lease) { s.fence.Store(l) }

// write runs f in a transaction, after checking the fence.
func (s *Store) write(ctx context.Context, f func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := s.checkFence(ctx, tx); err != nil {
		return err
	}
	if err := f(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// checkFence fails with core.ErrFenced when the store is fenced by a lease
// that is no longer the stored one. The lease row is read FOR SHARE where
// the dialect has it, so a takeover waits until this transaction ends.
func (s *Store) checkFence(ctx context.Context, tx *sql.Tx) error {
	fence := s.fence.Load()
	if fence == nil {
		return nil
	}
	var owner string
	var gen int64
	err := tx.QueryRowContext(ctx, s.q(`SELECT owner, generation FROM leases WHERE name = ?`+s.d.ForShare), fence.Name).Scan(&owner, &gen)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: lease %q is not held", core.ErrFenced, fence.Name)
	}
	if err != nil {
		return err
	}
	if owner != fence.Owner || gen != fence.Generation {
		return fmt.Errorf("%w: the lease is held by %s (generation %d), not %s (generation %d)", core.ErrFenced, owner, gen, fence.Owner, fence.Generation)
	}
	return nil
}

func (s *Store) dbNow(ctx context.Context, tx *sql.Tx) (int64, error) {
	var now int64
	err := tx.QueryRowContext(ctx, `SELECT `+s.d.NowMillis).Scan(&now)
	return now, err
}

// AcquireLease takes lease name for owner for ttl, by the database's clock.
// It succeeds when the lease is free, expired, or already owner's (a
// restarted server takes over from its previous run at once); the
// generation grows at every acquisition, so whatever held it before is
// fenced. It fails with a *core.LeaseHeldError naming the holder otherwise.
func (s *Store) AcquireLease(ctx context.Context, name, owner string, ttl time.Duration) (core.Lease, error) {
	var l core.Lease
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return l, err
	}
	defer tx.Rollback()
	if err := s.serialize(ctx, tx, "lease/"+name); err != nil {
		return l, err
	}
	now, err := s.dbNow(ctx, tx)
	if err != nil {
		return l, err
	}
	var cur string
	var gen, exp int64
	err = tx.QueryRowContext(ctx, s.q(`SELECT owner, generation, expires_at FROM leases WHERE name = ?`), name).Scan(&cur, &gen, &exp)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		gen = 1
	case err != nil:
		return l, err
	case cur != owner && exp > now:
		return l, &core.LeaseHeldError{Owner: cur, ExpiresAt: time.UnixMilli(exp).UTC()}
	default:
		gen++
	}
	exp = now + ttl.Milliseconds()
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO leases (name, owner, generation, expires_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, generation = excluded.generation, expires_at = excluded.expires_at`), name, owner, gen, exp); err != nil {
		return l, err
	}
	if err := tx.Commit(); err != nil {
		return l, err
	}
	return core.Lease{Name: name, Owner: owner, Generation: gen, ExpiresAt: time.UnixMilli(exp).UTC()}, nil
}

// RenewLease extends l by ttl. It fails with core.ErrFenced when another
// server has taken the lease since.
func (s *Store) RenewLease(ctx context.Context, l core.Lease, ttl time.Duration) (core.Lease, error) {
	err := s.Fenced(l).write(ctx, func(tx *sql.Tx) error {
		now, err := s.dbNow(ctx, tx)
		if err != nil {
			return err
		}
		l.ExpiresAt = time.UnixMilli(now + ttl.Milliseconds()).UTC()
		_, err = tx.ExecContext(ctx, s.q(`UPDATE leases SET expires_at = ? WHERE name = ? AND owner = ? AND generation = ?`), l.ExpiresAt.UnixMilli(), l.Name, l.Owner, l.Generation)
		return err
	})
	return l, err
}

// ReleaseLease gives l up at once (a clean shutdown), so another server
// need not wait for it to expire.
func (s *Store) ReleaseLease(ctx context.Context, l core.Lease) error {
	_, err := s.db.ExecContext(ctx, s.q(`UPDATE leases SET expires_at = 0 WHERE name = ? AND owner = ? AND generation = ?`), l.Name, l.Owner, l.Generation)
	return err
}

// GetLease returns the lease as stored (ErrNotFound when never taken).
func (s *Store) GetLease(ctx context.Context, name string) (core.Lease, error) {
	l := core.Lease{Name: name}
	var exp int64
	err := s.db.QueryRowContext(ctx, s.q(`SELECT owner, generation, expires_at FROM leases WHERE name = ?`), name).Scan(&l.Owner, &l.Generation, &exp)
	if errors.Is(err, sql.ErrNoRows) {
		return l, fmt.Errorf("lease %q: %w", name, core.ErrNotFound)
	}
	l.ExpiresAt = time.UnixMilli(exp).UTC()
	return l, err
}

// GetCursor implements deploy.Store.
func (s *Store) GetCursor(ctx context.Context, name string) (int64, error) {
	var pos int64
	err := s.db.QueryRowContext(ctx, s.q(`SELECT position FROM cursors WHERE name = ?`), name).Scan(&pos)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return pos, err
}

// PutCursor implements deploy.Store.
func (s *Store) PutCursor(ctx context.Context, name string, position int64) error {
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO cursors (name, position) VALUES (?, ?)
		ON CONFLICT (name) DO UPDATE SET position = excluded.position`), name, position)
	return err
}
