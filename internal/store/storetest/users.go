package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cutover/cutover/internal/core"
)

// UserStore keeps users, their role bindings and their API tokens.
type UserStore interface {
	CreateUser(ctx context.Context, u core.User) error
	EnsureUser(ctx context.Context, u core.User) error
	GetUser(ctx context.Context, name string) (core.User, error)
	ListUsers(ctx context.Context) ([]core.User, error)
	CreateToken(ctx context.Context, t core.Token, hash string) error
	TokenByHash(ctx context.Context, hash string) (core.Token, error)
	GetToken(ctx context.Context, id string) (core.Token, error)
	ListTokens(ctx context.Context, user string) ([]core.Token, error)
	TouchToken(ctx context.Context, id string, at time.Time) error
	RevokeToken(ctx context.Context, id string, at time.Time) error
}

// RunUsers runs the suite of users and tokens.
func RunUsers(t *testing.T, open func(t *testing.T) UserStore) {
	t.Run("users and role bindings", func(t *testing.T) { users(t, open(t)) })
	t.Run("tokens: lookup by hash, last used, revocation", func(t *testing.T) { tokens(t, open(t)) })
}

func users(t *testing.T, s UserStore) {
	now := time.Now().UTC().Truncate(time.Microsecond)
	ann := core.User{Name: "ann", Email: "ann@example.com", CreatedAt: now, Bindings: []core.RoleBinding{
		{Role: core.RoleDeployer, Apps: "hello", Envs: "staging"},
		{Role: core.RoleViewer, Apps: "*", Envs: "*"},
	}}
	if err := s.CreateUser(ctx, ann); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateUser(ctx, core.User{Name: "ann", CreatedAt: now}); !errors.Is(err, core.ErrConflict) {
		t.Errorf("second ann: %v, want ErrConflict", err)
	}
	got, err := s.GetUser(ctx, "ann")
	if err != nil || got.Email != ann.Email || !got.CreatedAt.Equal(now) || len(got.Bindings) != 2 || got.Bindings[0] != ann.Bindings[0] || got.Bindings[1] != ann.Bindings[1] {
		t.Fatalf("get ann = %+v, %v", got, err)
	}
	if _, err := s.GetUser(ctx, "nobody"); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("get nobody: %v, want ErrNotFound", err)
	}
	admin := core.User{Name: core.AdminUser, CreatedAt: now, Bindings: []core.RoleBinding{{Role: core.RoleAdmin, Apps: "*", Envs: "*"}}}
	for range 2 {
		if err := s.EnsureUser(ctx, admin); err != nil {
			t.Fatalf("ensure admin: %v", err)
		}
	}
	// EnsureUser leaves an existing user as it is.
	if err := s.EnsureUser(ctx, core.User{Name: "ann", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	all, err := s.ListUsers(ctx)
	if err != nil || len(all) != 2 || all[0].Name != core.AdminUser || all[1].Name != "ann" {
		t.Fatalf("list = %+v, %v", all, err)
	}
	if len(all[0].Bindings) != 1 || all[0].Bindings[0].Role != core.RoleAdmin || len(all[1].Bindings) != 2 {
		t.Errorf("list bindings = %+v, %+v", all[0].Bindings, all[1].Bindings)
	}
}

func tokens(t *testing.T, s UserStore) {
	now := time.Now().UTC().Truncate(time.Microsecond)
	if err := s.CreateToken(ctx, core.Token{ID: "t0", User: "ghost", CreatedAt: now}, "h0"); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("token of a missing user: %v, want ErrNotFound", err)
	}
	if err := s.CreateUser(ctx, core.User{Name: "bob", CreatedAt: now, Bindings: []core.RoleBinding{{Role: core.RoleViewer, Apps: "*", Envs: "*"}}}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"t1", "t2"} {
		if err := s.CreateToken(ctx, core.Token{ID: id, User: "bob", CreatedAt: now}, "hash-"+id); err != nil {
			t.Fatal(err)
		}
	}
	tok, err := s.TokenByHash(ctx, "hash-t1")
	if err != nil || tok.ID != "t1" || tok.User != "bob" || !tok.CreatedAt.Equal(now) || tok.LastUsed != nil || tok.RevokedAt != nil {
		t.Fatalf("by hash = %+v, %v", tok, err)
	}
	if _, err := s.TokenByHash(ctx, "no-such-hash"); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("unknown hash: %v, want ErrNotFound", err)
	}
	used := now.Add(time.Minute)
	if err := s.TouchToken(ctx, "t1", used); err != nil {
		t.Fatal(err)
	}
	if tok, _ := s.GetToken(ctx, "t1"); tok.LastUsed == nil || !tok.LastUsed.Equal(used) {
		t.Errorf("last used = %v, want %v", tok.LastUsed, used)
	}
	revoked := now.Add(2 * time.Minute)
	if err := s.RevokeToken(ctx, "t1", revoked); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeToken(ctx, "t1", revoked.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if tok, err := s.TokenByHash(ctx, "hash-t1"); err != nil || tok.RevokedAt == nil || !tok.RevokedAt.Equal(revoked) {
		t.Errorf("revoked token = %+v, %v; want revoked at %v (the first revocation)", tok, err, revoked)
	}
	if tok, _ := s.GetToken(ctx, "t2"); tok.RevokedAt != nil {
		t.Errorf("t2 revoked with t1: %+v", tok)
	}
	if err := s.RevokeToken(ctx, "nope", revoked); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("revoke unknown: %v, want ErrNotFound", err)
	}
	list, err := s.ListTokens(ctx, "bob")
	if err != nil || len(list) != 2 || list[0].ID != "t1" || list[1].ID != "t2" {
		t.Errorf("list tokens = %+v, %v", list, err)
	}
}
