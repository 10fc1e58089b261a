package postgres

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cutover/cutover/internal/core"

	"github.com/cutover/cutover/internal/deploy"
	"github.com/cutover/cutover/internal/secret"
	"github.com/cutover/cutover/internal/store/storetest"
)

var _ deploy.Store = (*Store)(nil)

// open gives each test a fresh schema in the database named by
// CUTOVER_TEST_POSTGRES.
func open(t *testing.T) deploy.Store {
	t.Helper()
	dsn := os.Getenv("CUTOVER_TEST_POSTGRES")
	if dsn == "" {
		t.Skip("CUTOVER_TEST_POSTGRES is not set (a postgres:// DSN); .ci/run starts PostgreSQL and sets it")
	}
	b := make([]byte, 6)
	rand.Read(b)
	schema := "t_" + hex.EncodeToString(b)
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if db, err := sql.Open("pgx", dsn); err == nil {
			db.Exec("DROP SCHEMA " + schema + " CASCADE")
			db.Close()
		}
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	box, err := secret.LoadOrCreateKey(filepath.Join(t.TempDir(), "key"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(context.Background(), u.String(), box)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, open)
	storetest.RunRelease(t, func(t *testing.T) storetest.ReleaseStore { return open(t).(*Store) })
	storetest.RunGovernance(t, func(t *testing.T) deploy.GovernanceStore { return open(t).(*Store) })
	storetest.RunLease(t, func(t *testing.T) storetest.LeaseStore[*Store] { return open(t).(*Store) })
	storetest.RunUsers(t, func(t *testing.T) storetest.UserStore { return open(t).(*Store) })
	storetest.RunHooks(t, func(t *testing.T) storetest.HookStore { return open(t).(*Store) })
	storetest.RunNotify(t, func(t *testing.T) storetest.NotifyStore { return open(t).(*Store) })
	storetest.RunInstallation(t, func(t *testing.T) (storetest.InstallationStore, func() storetest.InstallationStore) {
		a := open(t).(*Store)
		return a, func() storetest.InstallationStore { return sameDatabase(t, a) }
	})
}

// sameDatabase opens a second store on a's database and schema (another
// cutover server).
func sameDatabase(t *testing.T, a *Store) *Store {
	t.Helper()
	var schema string
	if err := a.DB().QueryRow("SELECT current_schema()").Scan(&schema); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(os.Getenv("CUTOVER_TEST_POSTGRES"))
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	b, err := Open(context.Background(), u.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// TestLockAcrossServers: two stores on one database (two cutover servers)
// race for an environment lock; exactly one gets it.
func TestLockAcrossServers(t *testing.T) {
	a := open(t).(*Store)
	b := sameDatabase(t, a)
	for round := range 20 {
		env := "prod" + string(rune('a'+round))
		errs := make(chan error, 2)
		for i, s := range []*Store{a, b} {
			go func() {
				errs <- s.TryLock(context.Background(), "app", env, "server "+string(rune('1'+i)), time.Minute)
			}()
		}
		won := 0
		for range 2 {
			if err := <-errs; err == nil {
				won++
			} else if !errors.Is(err, core.ErrLocked) {
				t.Fatal(err)
			}
		}
		if won != 1 {
			t.Fatalf("round %d: %d servers hold the lock", round, won)
		}
	}
}
