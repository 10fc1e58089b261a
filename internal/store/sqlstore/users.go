package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/cutover/cutover/internal/core"
)

// CreateUser stores u and its role bindings (ErrConflict when the name is
// taken). Like every change, it requires the server lease.
func (s *Store) CreateUser(ctx context.Context, u core.User) error {
	err := s.write(ctx, func(tx *sql.Tx) error { return s.insertUser(ctx, tx, u) })
	if s.isUnique(err) {
		return fmt.Errorf("%w: user %q already exists", core.ErrConflict, u.Name)
	}
	return err
}

// EnsureUser stores u unless a user of that name exists. It is the
// server's start-up bootstrap of the built-in admin, so it needs no lease:
// it changes nothing that exists.
func (s *Store) EnsureUser(ctx context.Context, u core.User) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := s.serialize(ctx, tx, "user/"+u.Name); err != nil {
		return err
	}
	var n int
	if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM users WHERE name = ?`), u.Name).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	if err := s.insertUser(ctx, tx, u); err != nil {
		if s.isUnique(err) { // another server bootstrapped it first
			return nil
		}
		return err
	}
	return tx.Commit()
}

func (s *Store) insertUser(ctx context.Context, tx *sql.Tx, u core.User) error {
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO users (name, email, created_at) VALUES (?, ?, ?)`), u.Name, u.Email, ns(u.CreatedAt)); err != nil {
		return err
	}
	for i, b := range u.Bindings {
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO role_bindings (user_name, position, role, apps, envs) VALUES (?, ?, ?, ?, ?)`),
			u.Name, i, string(b.Role), b.Apps, b.Envs); err != nil {
			return err
		}
	}
	return nil
}

// GetUser returns a user with its role bindings.
func (s *Store) GetUser(ctx context.Context, name string) (core.User, error) {
	u := core.User{Name: name}
	var created int64
	err := s.db.QueryRowContext(ctx, s.q(`SELECT email, created_at FROM users WHERE name = ?`), name).Scan(&u.Email, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return u, fmt.Errorf("user %q: %w", name, core.ErrNotFound)
	}
	if err != nil {
		return u, err
	}
	u.CreatedAt = fromNS(created)
	bs, err := s.bindings(ctx, name)
	u.Bindings = bs[name]
	return u, err
}

// ListUsers returns every user with its role bindings, by name.
func (s *Store) ListUsers(ctx context.Context) ([]core.User, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, email, created_at FROM users ORDER BY name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []core.User
	for rows.Next() {
		var u core.User
		var created int64
		if err := rows.Scan(&u.Name, &u.Email, &created); err != nil {
			return nil, err
		}
		u.CreatedAt = fromNS(created)
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	bs, err := s.bindings(ctx, "")
	for i := range out {
		out[i].Bindings = bs[out[i].Name]
	}
	return out, err
}

// bindings returns the role bindings of user (of every user for "").
func (s *Store) bindings(ctx context.Context, user string) (map[string][]core.RoleBinding, error) {
	q, args := `SELECT user_name, role, apps, envs FROM role_bindings ORDER BY user_name, position`, []any{}
	if user != "" {
		q, args = `SELECT user_name, role, apps, envs FROM role_bindings WHERE user_name = ? ORDER BY position`, []any{user}
	}
	rows, err := s.db.QueryContext(ctx, s.q(q), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string][]core.RoleBinding{}
	for rows.Next() {
		var name, role string
		var b core.RoleBinding
		if err := rows.Scan(&name, &role, &b.Apps, &b.Envs); err != nil {
			return nil, err
		}
		b.Role = core.Role(role)
		out[name] = append(out[name], b)
	}
	return out, rows.Err()
}

// CreateToken stores token t of an existing user under hash, the hex
// SHA-256 of the secret (ErrNotFound when the user does not exist).
func (s *Store) CreateToken(ctx context.Context, t core.Token, hash string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM users WHERE name = ?`), t.User).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("user %q: %w", t.User, core.ErrNotFound)
		}
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO api_tokens (id, hash, user_name, created_at) VALUES (?, ?, ?, ?)`), t.ID, hash, t.User, ns(t.CreatedAt))
		return err
	})
}

const tokenCols = `id, user_name, created_at, last_used, revoked_at`

func scanToken(row interface{ Scan(...any) error }) (core.Token, error) {
	var t core.Token
	var created int64
	var used, revoked sql.NullInt64
	if err := row.Scan(&t.ID, &t.User, &created, &used, &revoked); err != nil {
		return t, err
	}
	t.CreatedAt, t.LastUsed, t.RevokedAt = fromNS(created), ptrFromNS(used), ptrFromNS(revoked)
	return t, nil
}

// TokenByHash returns the token stored under hash, revoked or not
// (ErrNotFound when none is).
func (s *Store) TokenByHash(ctx context.Context, hash string) (core.Token, error) {
	t, err := scanToken(s.db.QueryRowContext(ctx, s.q(`SELECT `+tokenCols+` FROM api_tokens WHERE hash = ?`), hash))
	if errors.Is(err, sql.ErrNoRows) {
		return t, fmt.Errorf("token: %w", core.ErrNotFound)
	}
	return t, err
}

// GetToken returns a token's metadata by id.
func (s *Store) GetToken(ctx context.Context, id string) (core.Token, error) {
	t, err := scanToken(s.db.QueryRowContext(ctx, s.q(`SELECT `+tokenCols+` FROM api_tokens WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return t, fmt.Errorf("token %q: %w", id, core.ErrNotFound)
	}
	return t, err
}

// ListTokens returns the tokens of user, oldest first.
func (s *Store) ListTokens(ctx context.Context, user string) ([]core.Token, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT `+tokenCols+` FROM api_tokens WHERE user_name = ? ORDER BY created_at, id`), user)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []core.Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// TouchToken records that token id was used at. It is bookkeeping, not a
// change of state, so any server may write it, lease or not.
func (s *Store) TouchToken(ctx context.Context, id string, at time.Time) error {
	_, err := s.db.ExecContext(ctx, s.q(`UPDATE api_tokens SET last_used = ? WHERE id = ?`), ns(at), id)
	return err
}

// RevokeToken marks token id revoked at (ErrNotFound when there is no
// such token). Revoking a revoked token keeps the first time.
func (s *Store) RevokeToken(ctx context.Context, id string, at time.Time) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?`), ns(at), id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("token %q: %w", id, core.ErrNotFound)
		}
		return nil
	})
}

// UserByEmail returns the name of the user with that email (case
// insensitive), for deploy.UserDirectory.
func (s *Store) UserByEmail(ctx context.Context, email string) (string, bool) {
	var name string
	err := s.db.QueryRowContext(ctx, s.q(`SELECT name FROM users WHERE LOWER(email) = LOWER(?)`), email).Scan(&name)
	return name, err == nil
}
