package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cutover/cutover/internal/core"
)

// HookStore keeps webhook secrets and the delivery ids already processed.
type HookStore interface {
	PutHookSecret(ctx context.Context, app, secret string, at time.Time) error
	HookSecret(ctx context.Context, app string) (string, error)
	ClaimDelivery(ctx context.Context, source, id, app string, at time.Time) (bool, error)
	ReleaseDelivery(ctx context.Context, source, id string) error
	CreateApp(ctx context.Context, a core.App) error
	DeleteApp(ctx context.Context, name string) error
}

// RunHooks runs the suite of webhook secrets and deliveries.
func RunHooks(t *testing.T, open func(t *testing.T) HookStore) {
	t.Run("hook secrets", func(t *testing.T) { hookSecrets(t, open(t)) })
	t.Run("hook deliveries are claimed once", func(t *testing.T) { hookDeliveries(t, open(t)) })
}

func hookSecrets(t *testing.T, s HookStore) {
	if _, err := s.HookSecret(ctx, "a"); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("no secret: %v, want ErrNotFound", err)
	}
	for _, secret := range []string{"first", "second"} {
		if err := s.PutHookSecret(ctx, "a", secret, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := s.HookSecret(ctx, "a"); err != nil || got != "second" {
		t.Errorf("secret = %q, %v; want the newest", got, err)
	}
	// An app removed takes its secret along: an app added later under its
	// name does not accept deliveries signed with it.
	if err := s.CreateApp(ctx, core.App{Name: "a", Repo: "/r/a", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteApp(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.HookSecret(ctx, "a"); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("secret after the app was removed: %v, want ErrNotFound", err)
	}
}

func hookDeliveries(t *testing.T, s HookStore) {
	now := time.Now()
	for _, tc := range []struct {
		source, id string
		want       bool
	}{{"github", "d1", true}, {"github", "d1", false}, {"gitlab", "d1", true}, {"github", "d2", true}} {
		if got, err := s.ClaimDelivery(ctx, tc.source, tc.id, "a", now); err != nil || got != tc.want {
			t.Errorf("claim %s/%s = %v, %v; want %v", tc.source, tc.id, got, err, tc.want)
		}
	}
	if err := s.ReleaseDelivery(ctx, "github", "d1"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ClaimDelivery(ctx, "github", "d1", "a", now); err != nil || !got {
		t.Errorf("claim after release = %v, %v; want true", got, err)
	}
	// A claim long past the retention is forgotten when a later one is made.
	old := now.Add(-40 * 24 * time.Hour)
	if got, _ := s.ClaimDelivery(ctx, "github", "old", "a", old); !got {
		t.Fatal("old claim refused")
	}
	if _, err := s.ClaimDelivery(ctx, "github", "d3", "a", now); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ClaimDelivery(ctx, "github", "old", "a", now); err != nil || !got {
		t.Errorf("claim of a pruned id = %v, %v; want true", got, err)
	}
}
