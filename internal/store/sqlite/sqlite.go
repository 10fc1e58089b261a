// Package sqlite is the default Store: one SQLite file (pure Go driver, no
// C toolchain), WAL mode, migrations embedded and applied in order at Open
// so older databases are carried forward. The queries live in
// internal/store/sqlstore, shared with PostgreSQL.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"net/url"
	"strings"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"github.com/cutover/cutover/internal/secret"
	"github.com/cutover/cutover/internal/store/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store is the SQL store on SQLite.
type Store = sqlstore.Store

// Dialect is SQLite's: ? placeholders, write transactions exclusive from
// BEGIN (_txlock=immediate), so no extra serialisation is needed.
var Dialect = sqlstore.Dialect{
	Name:      "sqlite",
	NowMillis: `CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)`,
	UniqueViolation: func(err error) bool {
		return strings.Contains(err.Error(), "UNIQUE constraint failed")
	},
}

// BulkDeployments inserts n finished deployments (benchmarks of history).
var BulkDeployments = sqlstore.BulkDeployments

// Open opens (creating if needed) the database at path and migrates it.
// box encrypts secret config values.
func Open(ctx context.Context, path string, box *secret.Box) (*Store, error) {
	q := url.Values{}
	for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "foreign_keys(1)", "synchronous(NORMAL)"} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db.SetMaxOpenConns(8)
	if err := sqlstore.Migrate(ctx, db, Dialect, migrations, "migrations"); err != nil {
		db.Close()
		return nil, fmt.Errorf("migrate %s: %w", path, err)
	}
	return sqlstore.New(db, box, Dialect), nil
}
