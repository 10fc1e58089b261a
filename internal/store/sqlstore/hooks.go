package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/cutover/cutover/internal/core"
)

// KeepDeliveries is how long a processed webhook delivery id is remembered:
// a replay older than this would be processed again.
const KeepDeliveries = 30 * 24 * time.Hour

// PutHookSecret sets app's webhook secret (replacing the last), sealed with
// the store's secret key.
func (s *Store) PutHookSecret(ctx context.Context, app, secret string, at time.Time) error {
	if s.box == nil {
		return errors.New("store has no secret key: cannot store a hook secret")
	}
	enc, err := s.box.Seal([]byte(secret))
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, s.q(`INSERT INTO hook_secrets (app, secret, created_at) VALUES (?, ?, ?)
		ON CONFLICT (app) DO UPDATE SET secret = excluded.secret, created_at = excluded.created_at`), app, enc, ns(at))
	return err
}

// HookSecret returns app's webhook secret, ErrNotFound when none was set.
func (s *Store) HookSecret(ctx context.Context, app string) (string, error) {
	var enc string
	err := s.db.QueryRowContext(ctx, s.q(`SELECT secret FROM hook_secrets WHERE app = ?`), app).Scan(&enc)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("no hook secret set for %s: %w", app, core.ErrNotFound)
	}
	if err != nil {
		return "", err
	}
	if s.box == nil {
		return "", errors.New("store has no secret key: cannot open the hook secret")
	}
	pt, err := s.box.Open(enc)
	if err != nil {
		return "", fmt.Errorf("hook secret of %s: %w", app, err)
	}
	return string(pt), nil
}

// ClaimDelivery records delivery id of source for app and reports whether
// this call recorded it (false: it was claimed before). Ids older than
// KeepDeliveries are forgotten on the way.
func (s *Store) ClaimDelivery(ctx context.Context, source, id, app string, at time.Time) (bool, error) {
	claimed := false
	err := s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM hook_deliveries WHERE at < ?`), ns(at.Add(-KeepDeliveries))); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, s.q(`INSERT INTO hook_deliveries (source, id, app, at) VALUES (?, ?, ?, ?) ON CONFLICT (source, id) DO NOTHING`),
			source, id, app, ns(at))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		claimed = n == 1
		return err
	})
	return claimed, err
}

// ReleaseDelivery forgets a claimed delivery whose processing failed, so
// the sender's redelivery is processed.
func (s *Store) ReleaseDelivery(ctx context.Context, source, id string) error {
	_, err := s.db.ExecContext(ctx, s.q(`DELETE FROM hook_deliveries WHERE source = ? AND id = ?`), source, id)
	return err
}
