package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/deploy"
	"github.com/cutover/cutover/internal/secret"
	"github.com/cutover/cutover/internal/store/storetest"
)

var _ deploy.Store = (*Store)(nil)

func open(t testing.TB) *Store {
	t.Helper()
	dir := t.TempDir()
	box, err := secret.LoadOrCreateKey(filepath.Join(dir, "key"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(context.Background(), filepath.Join(dir, "db"), box)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) deploy.Store { return open(t) })
	storetest.RunRelease(t, func(t *testing.T) storetest.ReleaseStore { return open(t) })
	storetest.RunGovernance(t, func(t *testing.T) deploy.GovernanceStore { return open(t) })
	storetest.RunLease(t, func(t *testing.T) storetest.LeaseStore[*Store] { return open(t) })
	storetest.RunUsers(t, func(t *testing.T) storetest.UserStore { return open(t) })
	storetest.RunHooks(t, func(t *testing.T) storetest.HookStore { return open(t) })
	storetest.RunNotify(t, func(t *testing.T) storetest.NotifyStore { return open(t) })
	storetest.RunInstallation(t, func(t *testing.T) (storetest.InstallationStore, func() storetest.InstallationStore) {
		path := filepath.Join(t.TempDir(), "db")
		reopen := func() storetest.InstallationStore {
			s, err := Open(context.Background(), path, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}
		return reopen(), reopen
	})
}

func TestReopenKeepsDataAndMigrations(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(dir, "db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateApp(ctx, core.App{Name: "a", Repo: "r"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(ctx, filepath.Join(dir, "db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.GetApp(ctx, "a"); err != nil {
		t.Errorf("after reopen: %v", err)
	}
}

// BenchmarkListDeployments100k measures the history query with 100,000
// deployments stored: the newest page of one environment, and a page far back.
func BenchmarkListDeployments100k(b *testing.B) {
	s := open(b)
	ctx := context.Background()
	if err := s.CreateApp(ctx, core.App{Name: "a", Repo: "r"}); err != nil {
		b.Fatal(err)
	}
	if err := BulkDeployments(ctx, s, "a", []string{"staging", "production"}, 100000); err != nil {
		b.Fatal(err)
	}
	b.Run("newest page of an env", func(b *testing.B) {
		for b.Loop() {
			if ds, err := s.ListDeployments(ctx, "a", "production", 0, 50); err != nil || len(ds) != 50 {
				b.Fatal(err)
			}
		}
	})
	b.Run("page far back, all envs", func(b *testing.B) {
		for b.Loop() {
			if ds, err := s.ListDeployments(ctx, "a", "", 20000, 50); err != nil || len(ds) != 50 {
				b.Fatal(err)
			}
		}
	})
}
