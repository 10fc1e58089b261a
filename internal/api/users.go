package api

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/cutover/cutover/internal/access"
	"github.com/cutover/cutover/internal/core"
)

// Tokens.
const (
	TokenPrefix  = "cut_" // makes a cutover token recognisable (in logs, secret scanners)
	tokenBytes   = 32
	tokenIDBytes = 6
	// touchEvery bounds the writes of a token's last-used time: at most
	// one a minute, not one per request.
	touchEvery = time.Minute
)

// UserStore is what the API needs to know who calls it.
type UserStore interface {
	CreateUser(ctx context.Context, u core.User) error
	GetUser(ctx context.Context, name string) (core.User, error)
	ListUsers(ctx context.Context) ([]core.User, error)
	CreateToken(ctx context.Context, t core.Token, hash string) error
	TokenByHash(ctx context.Context, hash string) (core.Token, error)
	GetToken(ctx context.Context, id string) (core.Token, error)
	TouchToken(ctx context.Context, id string, at time.Time) error
	RevokeToken(ctx context.Context, id string, at time.Time) error
}

// principal is who makes a request: a user, and the token it came with
// ("" for the server's own token).
type principal struct {
	user    core.User
	tokenID string
}

type principalKey struct{}

// Actor is the name of the user making the request in ctx ("api" outside
// an authenticated request).
func Actor(ctx context.Context) string {
	if p, ok := ctx.Value(principalKey{}).(*principal); ok {
		return p.user.Name
	}
	return "api"
}

func actor(r *http.Request) string { return Actor(r.Context()) }

func caller(r *http.Request) *principal {
	p, _ := r.Context().Value(principalKey{}).(*principal)
	if p == nil {
		return &principal{user: core.User{Name: "anonymous"}}
	}
	return p
}

// builtinAdmin is the owner of the server's own token (the server also
// stores it, so `user list` shows it and names stay unique).
var builtinAdmin = core.User{Name: core.AdminUser, Bindings: []core.RoleBinding{{Role: core.RoleAdmin, Apps: core.AnyScope, Envs: core.AnyScope}}}

var errUnauthorized = errors.New("missing, unknown or revoked API token (send Authorization: Bearer TOKEN)")

// authenticate finds the user of the request's bearer token. The server's
// own token belongs to the built-in admin; any other is looked up by its
// hash on every request, so a revoked token is refused at once.
func (a *api) authenticate(r *http.Request, serverToken string) (*principal, error) {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || tok == "" {
		return nil, errUnauthorized
	}
	if serverToken != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(serverToken)) == 1 {
		return &principal{user: builtinAdmin}, nil
	}
	if a.users == nil || !strings.HasPrefix(tok, TokenPrefix) {
		return nil, errUnauthorized
	}
	t, err := a.users.TokenByHash(r.Context(), hashToken(tok))
	if errors.Is(err, core.ErrNotFound) || (err == nil && t.RevokedAt != nil) {
		return nil, errUnauthorized
	}
	if err != nil {
		return nil, err
	}
	u, err := a.users.GetUser(r.Context(), t.User)
	if errors.Is(err, core.ErrNotFound) {
		return nil, errUnauthorized
	}
	if err != nil {
		return nil, err
	}
	if now := time.Now(); t.LastUsed == nil || now.Sub(*t.LastUsed) >= touchEvery {
		if err := a.users.TouchToken(r.Context(), t.ID, now.UTC()); err != nil {
			a.log.Warn("record token use", "token", t.ID, "err", err)
		}
	}
	return &principal{user: u, tokenID: t.ID}, nil
}

func hashToken(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// scope says which app and environment a request acts on.
type scope func(a *api, r *http.Request) (app, env string)

// inPath: {app} and {env} from the path; a route without {env} acts on
// every env of the app.
func inPath(_ *api, r *http.Request) (string, string) {
	return r.PathValue("app"), cmp.Or(r.PathValue("env"), core.AnyScope)
}

// appWide: an app-wide read ({app} in the path) needs some env of the app.
func appWide(_ *api, r *http.Request) (string, string) {
	return r.PathValue("app"), access.AnyEnv
}

// appQuery: the ?app= filter of the event routes, all apps without it.
func inQuery(_ *api, r *http.Request) (string, string) {
	return cmp.Or(r.URL.Query().Get("app"), core.AnyScope), access.AnyEnv
}

// everything: routes that act on no one app (users, app registration).
func everything(*api, *http.Request) (string, string) { return core.AnyScope, core.AnyScope }

// ofDeployment: the app and env of deployment {id}; every app and env when
// it cannot be read (the handler then answers why).
func ofDeployment(a *api, r *http.Request) (string, string) {
	id, err := deploymentID(r)
	if err != nil {
		return core.AnyScope, core.AnyScope
	}
	d, err := a.svc.Deployment(r.Context(), id)
	if err != nil {
		return core.AnyScope, core.AnyScope
	}
	return d.App, d.Env
}

// allow lets the request through when its user's bindings allow action on
// the request's scope, and answers 403 naming the role needed otherwise.
func (a *api) allow(action access.Action, sc scope, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p := caller(r)
		app, env := sc(a, r)
		if err := access.Check(p.user.Name, p.user.Bindings, action, app, env); err != nil {
			writeJSON(w, http.StatusForbidden, errorBody{Error: err.Error()})
			return
		}
		h(w, r)
	}
}

// forbidden maps an *access.Forbidden to 403 for handlers that check
// access themselves (self or admin).
func (a *api) forbidden(h jsonHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		status, body, err := h(r)
		var f *access.Forbidden
		if errors.As(err, &f) {
			writeJSON(w, http.StatusForbidden, errorBody{Error: err.Error()})
			return
		}
		if err != nil {
			a.fail(w, r, err)
			return
		}
		writeJSON(w, status, body)
	}
}

// routeUsers mounts users and tokens under /api/v1.
func (a *api) routeUsers(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/me", a.json(a.me))
	if a.users == nil {
		return
	}
	mux.HandleFunc("POST /api/v1/users", a.allow(access.Users, everything, a.json(withBody(a.addUser))))
	mux.HandleFunc("GET /api/v1/users", a.allow(access.Users, everything, a.json(a.listUsers)))
	mux.HandleFunc("POST /api/v1/users/{name}/tokens", a.forbidden(a.createToken))
	mux.HandleFunc("DELETE /api/v1/tokens/{id}", a.forbidden(a.revokeToken))
}

type meResponse struct {
	User    core.User `json:"user"`
	TokenID string    `json:"token_id,omitempty"`
}

func (a *api) me(r *http.Request) (int, any, error) {
	p := caller(r)
	return http.StatusOK, meResponse{User: withBindings(p.user), TokenID: p.tokenID}, nil
}

func withBindings(u core.User) core.User {
	if u.Bindings == nil {
		u.Bindings = []core.RoleBinding{}
	}
	return u
}

type addUserRequest struct {
	Name  string    `json:"name"`
	Email string    `json:"email"`
	Role  core.Role `json:"role"`
	Apps  string    `json:"apps"`
	Envs  string    `json:"envs"`
}

// TokenResponse is a new token: the secret, shown this once, and its id.
type TokenResponse struct {
	Token string `json:"token"`
	ID    string `json:"id"`
}

type addUserResponse struct {
	User    core.User `json:"user"`
	Token   string    `json:"token"`
	TokenID string    `json:"token_id"`
}

func (a *api) addUser(r *http.Request, req addUserRequest) (int, any, error) {
	if err := core.ValidateName("name", req.Name); err != nil {
		return 0, nil, err
	}
	if err := core.ValidateEmail(req.Email); err != nil {
		return 0, nil, err
	}
	b := core.RoleBinding{Role: req.Role, Apps: req.Apps, Envs: req.Envs}
	if err := b.Validate(); err != nil {
		return 0, nil, err
	}
	u := core.User{Name: req.Name, Email: req.Email, Bindings: []core.RoleBinding{b}, CreatedAt: time.Now().UTC()}
	if err := a.users.CreateUser(r.Context(), u); err != nil {
		return 0, nil, err
	}
	t, err := a.newToken(r.Context(), u.Name)
	if err != nil {
		return 0, nil, fmt.Errorf("user %s added, but its token was not: %w", u.Name, err)
	}
	a.log.Info("user added", "user", u.Name, "role", b.Role, "apps", b.Apps, "envs", b.Envs, "by", actor(r))
	return http.StatusCreated, addUserResponse{User: u, Token: t.Token, TokenID: t.ID}, nil
}

func (a *api) newToken(ctx context.Context, user string) (TokenResponse, error) {
	secret, err := randomHex(tokenBytes)
	if err != nil {
		return TokenResponse{}, err
	}
	id, err := randomHex(tokenIDBytes)
	if err != nil {
		return TokenResponse{}, err
	}
	tok := TokenPrefix + secret
	if err := a.users.CreateToken(ctx, core.Token{ID: id, User: user, CreatedAt: time.Now().UTC()}, hashToken(tok)); err != nil {
		return TokenResponse{}, err
	}
	return TokenResponse{Token: tok, ID: id}, nil
}

func (a *api) listUsers(r *http.Request) (int, any, error) {
	us, err := a.users.ListUsers(r.Context())
	for i := range us {
		us[i] = withBindings(us[i])
	}
	if us == nil {
		us = []core.User{}
	}
	return http.StatusOK, us, err
}

// createToken makes a new token for {name}: a user may make their own,
// an admin anyone's.
func (a *api) createToken(r *http.Request) (int, any, error) {
	name := r.PathValue("name")
	if err := core.ValidateName("name", name); err != nil {
		return 0, nil, err
	}
	if err := a.selfOrAdmin(r, name); err != nil {
		return 0, nil, err
	}
	if _, err := a.users.GetUser(r.Context(), name); err != nil {
		return 0, nil, err
	}
	t, err := a.newToken(r.Context(), name)
	if err == nil {
		a.log.Info("token created", "user", name, "token", t.ID, "by", actor(r))
	}
	return http.StatusCreated, t, err
}

// revokeToken revokes token {id}: its owner or an admin may. Requests
// with it are refused from the next one on.
func (a *api) revokeToken(r *http.Request) (int, any, error) {
	id := r.PathValue("id")
	t, err := a.users.GetToken(r.Context(), id)
	if errors.Is(err, core.ErrNotFound) {
		// Only an admin learns whether an id exists.
		if ferr := a.selfOrAdmin(r, ""); ferr != nil {
			return 0, nil, ferr
		}
	}
	if err != nil {
		return 0, nil, err
	}
	if err := a.selfOrAdmin(r, t.User); err != nil {
		return 0, nil, err
	}
	if err := a.users.RevokeToken(r.Context(), id, time.Now().UTC()); err != nil {
		return 0, nil, err
	}
	a.log.Info("token revoked", "user", t.User, "token", id, "by", actor(r))
	return http.StatusOK, map[string]string{"revoked": id}, nil
}

func (a *api) selfOrAdmin(r *http.Request, user string) error {
	p := caller(r)
	if user != "" && p.user.Name == user {
		return nil
	}
	return access.Check(p.user.Name, p.user.Bindings, access.Tokens, core.AnyScope, core.AnyScope)
}

// listVisibleApps lists the apps the caller may read.
func (a *api) listVisibleApps(r *http.Request) (int, any, error) {
	status, body, err := a.listApps(r)
	if err != nil {
		return 0, nil, err
	}
	p := caller(r)
	out := []core.App{}
	for _, app := range body.([]core.App) {
		if access.Can(p.user.Bindings, access.Read, app.Name, access.AnyEnv) {
			out = append(out, app)
		}
	}
	return status, out, nil
}
