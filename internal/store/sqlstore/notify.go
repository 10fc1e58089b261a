package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/cutover/cutover/internal/core"
)

// CreateSubscription stores a notification subscription; its webhook
// secret is sealed with the store's key when it has one.
func (s *Store) CreateSubscription(ctx context.Context, sub core.Subscription) error {
	secret := sub.Secret
	if secret != "" && s.box != nil {
		enc, err := s.box.Seal([]byte(secret))
		if err != nil {
			return err
		}
		secret = enc
	}
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO notify_subscriptions (id, app, events, channel, url, secret, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
		sub.ID, sub.App, strings.Join(sub.Events, ","), sub.Channel, sub.URL, secret, sub.CreatedBy, ns(sub.CreatedAt))
	if s.isUnique(err) {
		return fmt.Errorf("subscription %s: %w: it already exists", sub.ID, core.ErrConflict)
	}
	return err
}

const subscriptionCols = `id, app, events, channel, url, secret, created_by, created_at`

func (s *Store) scanSubscription(row interface{ Scan(...any) error }) (core.Subscription, error) {
	var sub core.Subscription
	var events string
	var at int64
	if err := row.Scan(&sub.ID, &sub.App, &events, &sub.Channel, &sub.URL, &sub.Secret, &sub.CreatedBy, &at); err != nil {
		return sub, err
	}
	if events != "" {
		sub.Events = strings.Split(events, ",")
	}
	sub.CreatedAt = fromNS(at)
	if sub.Secret != "" && s.box != nil {
		plain, err := s.box.Open(sub.Secret)
		if err != nil {
			return sub, fmt.Errorf("subscription %s: open secret: %w", sub.ID, err)
		}
		sub.Secret = string(plain)
	}
	return sub, nil
}

// GetSubscription returns a subscription, secret included; ErrNotFound
// when there is none.
func (s *Store) GetSubscription(ctx context.Context, id string) (core.Subscription, error) {
	sub, err := s.scanSubscription(s.db.QueryRowContext(ctx, s.q(`SELECT `+subscriptionCols+` FROM notify_subscriptions WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return sub, fmt.Errorf("subscription %s: %w", id, core.ErrNotFound)
	}
	return sub, err
}

// ListSubscriptions returns the subscriptions of app ("" for every app),
// oldest first, secrets included (callers that show them must drop them).
func (s *Store) ListSubscriptions(ctx context.Context, app string) ([]core.Subscription, error) {
	q, args := `SELECT `+subscriptionCols+` FROM notify_subscriptions`, []any{}
	if app != "" {
		q += ` WHERE app = ?`
		args = append(args, app)
	}
	rows, err := s.db.QueryContext(ctx, s.q(q+` ORDER BY created_at, id`), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []core.Subscription
	for rows.Next() {
		sub, err := s.scanSubscription(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, sub)
	}
	return out, rows.Err()
}

// DeleteSubscription removes a subscription; ErrNotFound when there is none.
// Its delivery log stays.
func (s *Store) DeleteSubscription(ctx context.Context, id string) error {
	res, err := s.db.ExecContext(ctx, s.q(`DELETE FROM notify_subscriptions WHERE id = ?`), id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("subscription %s: %w", id, core.ErrNotFound)
	}
	return nil
}

// RecordDelivery records one delivery attempt.
func (s *Store) RecordDelivery(ctx context.Context, d core.Delivery) error {
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO notify_deliveries (subscription, app, event_id, kind, attempt, status, error, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (subscription, event_id, attempt) DO UPDATE SET status = excluded.status, error = excluded.error, at = excluded.at`),
		d.Subscription, d.App, d.EventID, d.Kind, d.Attempt, d.Status, d.Error, ns(d.At))
	return err
}

// DeliveryState says how far event eventID went to a subscription: the
// attempts recorded, and whether it is done (the receiver acknowledged it,
// or the notifier gave up on it).
func (s *Store) DeliveryState(ctx context.Context, subscription string, eventID int64) (attempts int, done bool, err error) {
	var finished int
	err = s.db.QueryRowContext(ctx, s.q(`SELECT COALESCE(MAX(attempt), 0), COUNT(CASE WHEN status IN (?, ?) THEN 1 END) FROM notify_deliveries WHERE subscription = ? AND event_id = ?`),
		core.DeliveryOK, core.DeliveryGaveUp, subscription, eventID).Scan(&attempts, &finished)
	return attempts, finished > 0, err
}

// PendingDeliveries returns the events some subscription has failed
// attempts for and neither acknowledged nor gave up on, oldest first, at
// most limit.
func (s *Store) PendingDeliveries(ctx context.Context, limit int) ([]core.PendingDelivery, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT subscription, app, event_id, kind, MAX(attempt), MIN(at), MAX(at) FROM notify_deliveries
		WHERE event_id > 0 GROUP BY subscription, app, event_id, kind
		HAVING COUNT(CASE WHEN status IN (?, ?) THEN 1 END) = 0 ORDER BY MIN(at), event_id LIMIT ?`),
		core.DeliveryOK, core.DeliveryGaveUp, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []core.PendingDelivery
	for rows.Next() {
		var p core.PendingDelivery
		var first, last int64
		if err := rows.Scan(&p.Subscription, &p.App, &p.EventID, &p.Kind, &p.Attempts, &first, &last); err != nil {
			return nil, err
		}
		p.First, p.Last = fromNS(first), fromNS(last)
		out = append(out, p)
	}
	return out, rows.Err()
}

// ListDeliveries returns app's newest delivery attempts first, at most limit.
func (s *Store) ListDeliveries(ctx context.Context, app string, limit int) ([]core.Delivery, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT subscription, app, event_id, kind, attempt, status, error, at FROM notify_deliveries WHERE app = ?
		ORDER BY at DESC, event_id DESC, attempt DESC LIMIT ?`), app, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []core.Delivery
	for rows.Next() {
		var d core.Delivery
		var at int64
		if err := rows.Scan(&d.Subscription, &d.App, &d.EventID, &d.Kind, &d.Attempt, &d.Status, &d.Error, &at); err != nil {
			return nil, err
		}
		d.At = fromNS(at)
		out = append(out, d)
	}
	return out, rows.Err()
}
