package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/deploy"
)

// RunGovernance checks CI results, reviews, approvals, locks and policies.
func RunGovernance(t *testing.T, open func(t *testing.T) deploy.GovernanceStore) {
	t.Run("commit statuses: newest per name wins", func(t *testing.T) {
		s := open(t)
		now := time.Now().UTC().Truncate(time.Microsecond)
		for _, st := range []core.CheckState{core.CheckPending, core.CheckFailure, core.CheckSuccess} {
			if err := s.PutCommitStatus(ctx, core.CommitStatus{App: "a", SHA: sha1, Name: "test", State: st, URL: "https://ci/1", By: "ci", At: now}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.PutCommitStatus(ctx, core.CommitStatus{App: "a", SHA: sha1, Name: "lint", State: core.CheckFailure, By: "ci", At: now}); err != nil {
			t.Fatal(err)
		}
		got, err := s.CommitStatuses(ctx, "a", sha1)
		if err != nil || len(got) != 2 || got[0].Name != "lint" || got[1].State != core.CheckSuccess || got[1].URL != "https://ci/1" || !got[1].At.Equal(now) {
			t.Errorf("statuses = %+v, %v", got, err)
		}
		if other, _ := s.CommitStatuses(ctx, "b", sha1); len(other) != 0 {
			t.Errorf("statuses are per app: %+v", other)
		}
	})
	t.Run("reviews and approvals", func(t *testing.T) {
		s := open(t)
		now := time.Now().UTC()
		for _, by := range []string{"ann", "bob", "ann"} {
			if err := s.PutReview(ctx, core.Review{App: "a", SHA: sha1, By: by, At: now}); err != nil {
				t.Fatal(err)
			}
		}
		if rs, err := s.Reviews(ctx, "a", sha1); err != nil || len(rs) != 2 {
			t.Errorf("reviews = %+v, %v (one per person)", rs, err)
		}
		if err := s.PutApproval(ctx, core.Approval{App: "a", Env: "prod", Release: 3, By: "cy", At: now}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutApproval(ctx, core.Approval{App: "a", Env: "prod", SHA: sha1, By: "dee", At: now}); err != nil {
			t.Fatal(err)
		}
		if as, err := s.Approvals(ctx, "a", "prod"); err != nil || len(as) != 2 || as[0].Release != 3 || as[1].SHA != sha1 {
			t.Errorf("approvals = %+v, %v", as, err)
		}
		if as, _ := s.Approvals(ctx, "a", "staging"); len(as) != 0 {
			t.Errorf("approvals are per environment: %+v", as)
		}
	})
	t.Run("environment locks", func(t *testing.T) {
		s := open(t)
		if _, err := s.EnvLock(ctx, "a", "prod"); !errors.Is(err, core.ErrNotFound) {
			t.Fatalf("unlocked: %v", err)
		}
		l := core.EnvLock{App: "a", Env: "prod", Reason: "incident 42", By: "ann", At: time.Now().UTC().Truncate(time.Microsecond)}
		if err := s.PutEnvLock(ctx, l); err != nil {
			t.Fatal(err)
		}
		l.Reason, l.Automatic = "automatic rollback of #3", true
		if err := s.PutEnvLock(ctx, l); err != nil {
			t.Fatal(err)
		}
		if got, err := s.EnvLock(ctx, "a", "prod"); err != nil || got.Reason != l.Reason || !got.Automatic || got.By != "ann" || !got.At.Equal(l.At) {
			t.Errorf("lock = %+v, %v", got, err)
		}
		if err := s.DeleteEnvLock(ctx, "a", "prod"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteEnvLock(ctx, "a", "prod"); !errors.Is(err, core.ErrNotFound) {
			t.Errorf("unlock twice: %v", err)
		}
	})
	t.Run("policies are versioned", func(t *testing.T) {
		s := open(t)
		if _, err := s.Policy(ctx, "a"); !errors.Is(err, core.ErrNotFound) {
			t.Fatalf("no policy: %v", err)
		}
		for i, body := range []string{"environments: {}\n", "environments: {staging: {}}\n"} {
			p, err := s.PutPolicy(ctx, core.PolicyVersion{App: "a", Body: body, By: "root", At: time.Now().UTC()})
			if err != nil || p.Version != i+1 {
				t.Fatalf("put policy = v%d, %v", p.Version, err)
			}
		}
		if p, err := s.Policy(ctx, "a"); err != nil || p.Version != 2 || p.Body != "environments: {staging: {}}\n" || p.By != "root" {
			t.Errorf("latest policy = %+v, %v", p, err)
		}
	})
}
