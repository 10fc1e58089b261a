package server_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/deploy"
)

// TestDeployOnPostgres runs the release path with PostgreSQL as the store.
func TestDeployOnPostgres(t *testing.T) {
	dsn := os.Getenv("CUTOVER_TEST_POSTGRES")
	if dsn == "" {
		t.Skip("CUTOVER_TEST_POSTGRES is not set (a postgres:// DSN); .ci/run starts PostgreSQL and sets it")
	}
	t.Parallel()
	b := make([]byte, 6)
	rand.Read(b)
	schema := "e2e_" + hex.EncodeToString(b)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Exec("DROP SCHEMA " + schema + " CASCADE"); db.Close() })
	u, _ := url.Parse(dsn)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()

	e := newEnvOn(t, u.String())
	e.deploy("staging", core.StateSucceeded)
	e.version("v2", "")
	e.deploy("staging", core.StateSucceeded)
	e.serves(e.staging, "v2")
	rb, err := e.svc.Rollback(context.Background(), deploy.RollbackRequest{App: "hello", Env: "staging"})
	if err != nil {
		t.Fatal(err)
	}
	e.wait(rb, core.StateSucceeded)
	e.serves(e.staging, "v1")
	// A restart on the same database finds everything.
	e.close(false)
	e.open()
	if st := e.state("staging"); st.LiveRelease() != rb.Release {
		t.Errorf("after restart live = v%d, want v%d", st.LiveRelease(), rb.Release)
	}
}
