package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/deploy"
	"github.com/cutover/cutover/internal/testutil"
)

// LeaseStore is a store that holds the server lease and can be fenced by it.
type LeaseStore[S deploy.Store] interface {
	deploy.Store
	AcquireLease(ctx context.Context, name, owner string, ttl time.Duration) (core.Lease, error)
	RenewLease(ctx context.Context, l core.Lease, ttl time.Duration) (core.Lease, error)
	ReleaseLease(ctx context.Context, l core.Lease) error
	Fenced(l core.Lease) S
}

// RunLease checks the server lease and fencing.
func RunLease[S deploy.Store](t *testing.T, open func(t *testing.T) LeaseStore[S]) {
	t.Run("one holder, takeover after expiry, generation grows", func(t *testing.T) {
		s := open(t)
		a, err := s.AcquireLease(ctx, "active", "server-a", time.Hour)
		if err != nil || a.Generation != 1 || a.Owner != "server-a" {
			t.Fatalf("acquire = %+v, %v", a, err)
		}
		again, err := s.AcquireLease(ctx, "active", "server-a", time.Hour)
		if err != nil || again.Generation != 2 {
			t.Errorf("re-acquire by the same owner (a restart) = %+v, %v; want generation 2", again, err)
		}
		if _, err := s.RenewLease(ctx, a, time.Hour); !errors.Is(err, core.ErrFenced) {
			t.Errorf("renewal by the previous run: %v, want ErrFenced", err)
		}
		_, err = s.AcquireLease(ctx, "active", "server-b", time.Hour)
		var held *core.LeaseHeldError
		if !errors.As(err, &held) || held.Owner != "server-a" || !errors.Is(err, core.ErrStandby) {
			t.Fatalf("second server: %v, want LeaseHeldError naming server-a", err)
		}
		short, err := s.AcquireLease(ctx, "other", "server-a", time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		var b core.Lease
		testutil.WaitFor(t, "server-b to take over the expired 1 ms lease", 5*time.Second, func() bool {
			if b, err = s.AcquireLease(ctx, "other", "server-b", time.Hour); err != nil && !errors.As(err, &held) {
				t.Fatalf("takeover after expiry: %v", err)
			}
			return err == nil
		})
		if b.Generation != short.Generation+1 {
			t.Errorf("takeover generation = %d, want %d", b.Generation, short.Generation+1)
		}
		if _, err := s.RenewLease(ctx, short, time.Hour); !errors.Is(err, core.ErrFenced) {
			t.Errorf("renewal by the deposed holder: %v, want ErrFenced", err)
		}
		if _, err := s.RenewLease(ctx, b, time.Hour); err != nil {
			t.Errorf("renewal by the holder: %v", err)
		}
		if err := s.ReleaseLease(ctx, b); err != nil {
			t.Fatal(err)
		}
		if c, err := s.AcquireLease(ctx, "other", "server-c", time.Hour); err != nil || c.Generation != b.Generation+1 {
			t.Errorf("after release = %+v, %v", c, err)
		}
	})
	t.Run("a deposed holder's writes are refused", func(t *testing.T) {
		s := open(t)
		mustApp(t, s, "a")
		a, err := s.AcquireLease(ctx, "active", "server-a", time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		fa := s.Fenced(a)
		now := time.Now()
		d, err := fa.CreateDeployment(ctx, core.Deployment{App: "a", Env: "prod", Kind: core.KindDeploy, State: core.StateRunning, Step: core.StepVerify, CreatedAt: now, UpdatedAt: now})
		if err != nil {
			t.Fatalf("write by the holder: %v", err)
		}
		var b core.Lease
		testutil.WaitFor(t, "server-b to take over the expired 1 ms lease", 5*time.Second, func() bool {
			b, err = s.AcquireLease(ctx, "active", "server-b", time.Hour)
			return err == nil
		})
		d.Reason, d.State = "switching back", core.StateRolledBack
		if err := fa.UpdateDeployment(ctx, d); !errors.Is(err, core.ErrFenced) {
			t.Errorf("deployment write after takeover: %v, want ErrFenced", err)
		}
		if _, err := fa.PutEnvState(ctx, core.EnvState{App: "a", Env: "prod", Live: core.Blue}); !errors.Is(err, core.ErrFenced) {
			t.Errorf("state write after takeover: %v, want ErrFenced", err)
		}
		if _, err := fa.AppendEvent(ctx, core.Event{App: "a", Type: core.EventDeployStep, Time: now, Message: "x"}); !errors.Is(err, core.ErrFenced) {
			t.Errorf("event after takeover: %v, want ErrFenced", err)
		}
		if err := fa.TryLock(ctx, "a", "prod", "deployment 1 on server-a", time.Hour); !errors.Is(err, core.ErrFenced) {
			t.Errorf("lock after takeover: %v, want ErrFenced", err)
		}
		got, _ := s.GetDeployment(ctx, d.ID)
		if got.State != core.StateRunning || got.Reason != "" {
			t.Errorf("a refused write changed the deployment: %+v", got)
		}
		if err := s.Fenced(b).UpdateDeployment(ctx, d); err != nil {
			t.Errorf("write by the new holder: %v", err)
		}
	})
}
