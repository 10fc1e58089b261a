package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cutover/cutover/internal/core"
)

// NotifyStore keeps notification subscriptions and their delivery log.
type NotifyStore interface {
	CreateSubscription(ctx context.Context, sub core.Subscription) error
	GetSubscription(ctx context.Context, id string) (core.Subscription, error)
	ListSubscriptions(ctx context.Context, app string) ([]core.Subscription, error)
	DeleteSubscription(ctx context.Context, id string) error
	RecordDelivery(ctx context.Context, d core.Delivery) error
	DeliveryState(ctx context.Context, subscription string, eventID int64) (attempts int, done bool, err error)
	PendingDeliveries(ctx context.Context, limit int) ([]core.PendingDelivery, error)
	ListDeliveries(ctx context.Context, app string, limit int) ([]core.Delivery, error)
}

// RunNotify runs the suite of notification subscriptions and deliveries.
func RunNotify(t *testing.T, open func(t *testing.T) NotifyStore) {
	t.Run("notify subscriptions", func(t *testing.T) { subscriptions(t, open(t)) })
	t.Run("notify deliveries", func(t *testing.T) { deliveries(t, open(t)) })
}

func subscriptions(t *testing.T, s NotifyStore) {
	now := time.Now().UTC().Truncate(time.Microsecond)
	a := core.Subscription{ID: "n1", App: "hello", Events: []string{"rollback", "deploy.failed"}, Channel: core.ChannelWebhook,
		URL: "https://example.com/hook", Secret: "s3cret", CreatedBy: "ann", CreatedAt: now}
	b := core.Subscription{ID: "n2", App: "other", Events: []string{"approval"}, Channel: core.ChannelSlack, URL: "https://hooks.example.com/x", CreatedAt: now.Add(time.Second)}
	for _, sub := range []core.Subscription{a, b} {
		if err := s.CreateSubscription(ctx, sub); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateSubscription(ctx, a); !errors.Is(err, core.ErrConflict) {
		t.Errorf("second create = %v, want ErrConflict", err)
	}
	got, err := s.GetSubscription(ctx, "n1")
	if err != nil || got.Secret != "s3cret" || len(got.Events) != 2 || got.Events[1] != "deploy.failed" || !got.CreatedAt.Equal(now) || got.Channel != core.ChannelWebhook {
		t.Errorf("get = %+v, %v", got, err)
	}
	if l, err := s.ListSubscriptions(ctx, "hello"); err != nil || len(l) != 1 || l[0].ID != "n1" {
		t.Errorf("list hello = %+v, %v", l, err)
	}
	if l, err := s.ListSubscriptions(ctx, ""); err != nil || len(l) != 2 {
		t.Errorf("list all = %+v, %v", l, err)
	}
	if err := s.DeleteSubscription(ctx, "n1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSubscription(ctx, "n1"); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("get after delete = %v", err)
	}
	if err := s.DeleteSubscription(ctx, "n1"); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("second delete = %v", err)
	}
}

func deliveries(t *testing.T, s NotifyStore) {
	now := time.Now().UTC().Truncate(time.Microsecond)
	rec := func(attempt int, st core.DeliveryStatus) {
		t.Helper()
		if err := s.RecordDelivery(ctx, core.Delivery{Subscription: "n1", App: "hello", EventID: 7, Kind: "rollback", Attempt: attempt,
			Status: st, Error: "x", At: now.Add(time.Duration(attempt) * time.Second)}); err != nil {
			t.Fatal(err)
		}
	}
	rec(1, core.DeliveryFailed)
	if n, done, err := s.DeliveryState(ctx, "n1", 7); err != nil || done || n != 1 {
		t.Errorf("state after a failure = %d, %v, %v", n, done, err)
	}
	if err := s.RecordDelivery(ctx, core.Delivery{Subscription: "n2", App: "hello", EventID: 8, Kind: "rollback", Attempt: 1,
		Status: core.DeliveryGaveUp, At: now}); err != nil {
		t.Fatal(err)
	}
	p, err := s.PendingDeliveries(ctx, 10)
	if err != nil || len(p) != 1 || p[0].Subscription != "n1" || p[0].EventID != 7 || p[0].Attempts != 1 || p[0].Kind != "rollback" ||
		!p[0].First.Equal(now.Add(time.Second)) || !p[0].Last.Equal(p[0].First) {
		t.Errorf("pending after a failure = %+v, %v; want n1/7 only (n2/8 was given up on)", p, err)
	}
	rec(2, core.DeliveryOK)
	if n, done, err := s.DeliveryState(ctx, "n1", 7); err != nil || !done || n != 2 {
		t.Errorf("state after ok = %d, %v, %v", n, done, err)
	}
	if p, err := s.PendingDeliveries(ctx, 10); err != nil || len(p) != 0 {
		t.Errorf("pending after ok = %+v, %v", p, err)
	}
	if n, done, _ := s.DeliveryState(ctx, "n2", 7); done || n != 0 {
		t.Error("another subscription counts as delivered")
	}
	l, err := s.ListDeliveries(ctx, "hello", 10)
	if err != nil || len(l) != 3 || l[0].Attempt != 2 || l[0].Status != core.DeliveryOK || !l[1].At.Equal(now.Add(time.Second)) {
		t.Errorf("log = %+v, %v", l, err)
	}
}
