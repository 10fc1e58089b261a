// Package postgres is the Store for teams that run several cutover servers
// on one database: the same queries as SQLite (internal/store/sqlstore),
// PostgreSQL placeholders, and advisory transaction locks where concurrent
// writers must wait for each other (numbering, environment locks).
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver

	"github.com/cutover/cutover/internal/secret"
	"github.com/cutover/cutover/internal/store/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store is the SQL store on PostgreSQL.
type Store = sqlstore.Store

// Dialect is PostgreSQL's.
var Dialect = sqlstore.Dialect{
	Name:      "postgres",
	Dollar:    true,
	Serialize: `SELECT pg_advisory_xact_lock(hashtext(?))`,
	NowMillis: `(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT`,
	ForShare:  ` FOR SHARE`,
	UniqueViolation: func(err error) bool {
		var pe *pgconn.PgError
		return errors.As(err, &pe) && pe.Code == "23505"
	},
}

// Open connects to dsn (postgres://user:pass@host/db?sslmode=disable) and
// migrates the schema. box encrypts secret config values.
func Open(ctx context.Context, dsn string, box *secret.Box) (*Store, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	db.SetMaxOpenConns(16)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to postgres: %w", err)
	}
	if err := sqlstore.Migrate(ctx, db, Dialect, migrations, "migrations"); err != nil {
		db.Close()
		return nil, fmt.Errorf("migrate postgres: %w", err)
	}
	return sqlstore.New(db, box, Dialect), nil
}
