// Package api is cutover's REST API under /api/v1 and its event stream
// (Server-Sent Events). It calls the deploy machine; nothing calls it.
package api

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cutover/cutover/internal/access"
	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/deploy"
	"github.com/cutover/cutover/internal/release"
)

// Bounds on requests.
const (
	MaxBodyBytes     = 1 << 20
	MaxWait          = 10 * time.Minute
	DefaultWait      = 30 * time.Second
	sseHeartbeat     = 15 * time.Second
	sseReplayLimit   = 1000
	ssePoll          = time.Second // store catch-up for events of other servers
	defaultLogsBytes = 64 << 10
)

// Config wires the API.
type Config struct {
	Service *deploy.Service
	Release *release.Service // release management; nil leaves its routes out
	Token   string           // the server's own token: the built-in admin's
	Users   UserStore        // users and their tokens; nil: only Token is accepted
	Hooks   HookStore        // webhook secrets and deliveries; nil leaves the hook routes out
	OnPush  PushFunc         // told of pushes received by webhook; may be nil
	Notify  Notifications    // notification subscriptions; nil leaves their routes out
	Logger  *slog.Logger
}

type api struct {
	svc    *deploy.Service
	rel    *release.Service
	users  UserStore
	hooks  HookStore
	onPush PushFunc
	notify Notifications
	log    *slog.Logger
}

// New returns the API handler.
func New(cfg Config) http.Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	a := &api{svc: cfg.Service, rel: cfg.Release, users: cfg.Users, hooks: cfg.Hooks, onPush: cfg.OnPush, notify: cfg.Notify, log: cfg.Logger}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/healthz", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, map[string]string{"status": "ok"}) })
	mux.HandleFunc("GET /api/v1/apps", a.json(a.listVisibleApps))
	mux.HandleFunc("POST /api/v1/apps", a.allow(access.Apps, everything, a.json(withBody(a.addApp))))
	mux.HandleFunc("GET /api/v1/apps/{app}", a.allow(access.Read, appWide, a.json(a.getApp)))
	mux.HandleFunc("DELETE /api/v1/apps/{app}", a.allow(access.Apps, inPath, a.json(a.removeApp)))
	mux.HandleFunc("POST /api/v1/apps/{app}/builds", a.allow(access.Build, appWide, a.json(withBody(a.build))))
	mux.HandleFunc("POST /api/v1/apps/{app}/envs/{env}/deployments", a.allow(access.Deploy, inPath, a.json(withBody(a.deploy))))
	mux.HandleFunc("POST /api/v1/apps/{app}/envs/{env}/rollback", a.allow(access.Rollback, inPath, a.json(withBody(a.rollback))))
	mux.HandleFunc("POST /api/v1/apps/{app}/envs/{env}/confirm", a.allow(access.Confirm, inPath, a.json(a.confirm)))
	mux.HandleFunc("POST /api/v1/apps/{app}/envs/{env}/stop", a.allow(access.Stop, inPath, a.json(a.stop)))
	mux.HandleFunc("POST /api/v1/apps/{app}/envs/{env}/hold", a.allow(access.Hold, inPath, a.json(withBody(a.hold))))
	mux.HandleFunc("GET /api/v1/apps/{app}/envs/{env}/config", a.allow(access.Read, inPath, a.json(a.getConfig)))
	mux.HandleFunc("PUT /api/v1/apps/{app}/envs/{env}/config", a.allow(access.Config, inPath, a.json(withBody(a.replaceConfig))))
	mux.HandleFunc("PATCH /api/v1/apps/{app}/envs/{env}/config", a.allow(access.Config, inPath, a.json(withBody(a.changeConfig))))
	mux.HandleFunc("GET /api/v1/apps/{app}/envs/{env}/logs", a.allow(access.Read, inPath, a.logs))
	mux.HandleFunc("GET /api/v1/apps/{app}/status", a.allow(access.Read, appWide, a.json(a.status)))
	mux.HandleFunc("GET /api/v1/apps/{app}/deployments", a.allow(access.Read, appWide, a.json(a.history)))
	mux.HandleFunc("GET /api/v1/apps/{app}/releases", a.allow(access.Read, appWide, a.json(a.releases)))
	mux.HandleFunc("GET /api/v1/deployments/{id}", a.allow(access.Read, ofDeployment, a.json(a.deployment)))
	mux.HandleFunc("GET /api/v1/deployments/{id}/wait", a.allow(access.Read, ofDeployment, a.json(a.wait)))
	mux.HandleFunc("POST /api/v1/deployments/{id}/cancel", a.allow(access.Cancel, ofDeployment, a.json(a.cancel)))
	mux.HandleFunc("GET /api/v1/events", a.allow(access.Read, inQuery, a.json(a.events)))
	mux.HandleFunc("GET /api/v1/events/stream", a.allow(access.Read, inQuery, a.stream))
	a.routeUsers(mux)
	a.routeReleases(mux)
	a.routeGovernance(mux)
	a.routeHooks(mux)
	a.routeNotify(mux)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Webhooks authenticate by their signature, checked by the handler.
		if r.URL.Path != "/api/v1/healthz" && !isHookPath(r.URL.Path) {
			p, err := a.authenticate(r, cfg.Token)
			if errors.Is(err, errUnauthorized) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="cutover"`)
				writeJSON(w, http.StatusUnauthorized, errorBody{Error: err.Error()})
				return
			}
			if err != nil {
				a.fail(w, r, fmt.Errorf("authenticate: %w", err))
				return
			}
			r = r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
		}
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			// Only the server holding the lease changes anything; the
			// others say which one does.
			if why := a.svc.Standby(); why != "" {
				a.fail(w, r, fmt.Errorf("%w: %s", core.ErrStandby, why))
				return
			}
		}
		mux.ServeHTTP(w, r)
	})
}

type errorBody struct {
	Error     string `json:"error"`
	RequestID string `json:"request_id,omitempty"` // on 5xx answers: the id the server logged the error under
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// fail maps domain errors to statuses. A 5xx answer carries no internal
// detail: a generic message and a request id, under which the full error
// is logged.
func (a *api) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := errorStatus(err)
	body := errorBody{Error: msg}
	if status >= 500 {
		body.RequestID = requestID(r)
		body.Error = fmt.Sprintf("%s (request id %s)", msg, body.RequestID)
		w.Header().Set("X-Request-Id", body.RequestID)
		a.log.Error("api", "method", r.Method, "path", r.URL.Path, "status", status, "request_id", body.RequestID, "err", err)
	}
	writeJSON(w, status, body)
}

// errorStatus returns the status for err and the message to answer with:
// the error itself for 4xx, a generic one for 5xx.
func errorStatus(err error) (int, string) {
	switch {
	case errors.Is(err, core.ErrInvalid):
		return http.StatusBadRequest, err.Error()
	case errors.Is(err, core.ErrNotFound):
		return http.StatusNotFound, err.Error()
	case errors.Is(err, core.ErrConflict), errors.Is(err, core.ErrLocked):
		return http.StatusConflict, err.Error()
	case errors.As(err, new(*access.Forbidden)):
		return http.StatusForbidden, err.Error()
	case errors.Is(err, core.ErrBuildFailed):
		// The request was fine; the commit does not build.
		return http.StatusUnprocessableEntity, err.Error()
	case errors.Is(err, core.ErrStandby), errors.Is(err, core.ErrFenced):
		// Another server is active: the message names it.
		return http.StatusServiceUnavailable, err.Error()
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout, "the operation timed out"
	}
	return http.StatusInternalServerError, "internal error"
}

// requestID returns the request's X-Request-Id when it is a plain token,
// or a new random id.
func requestID(r *http.Request) string {
	if id := r.Header.Get("X-Request-Id"); id != "" && len(id) <= 64 && strings.Trim(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == "" {
		return id
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func errInvalidf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{core.ErrInvalid}, args...)...)
}

func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return fmt.Errorf("%w: request body larger than %d bytes", core.ErrInvalid, MaxBodyBytes)
		}
		return fmt.Errorf("%w: request body: %v", core.ErrInvalid, err)
	}
	return nil
}

// names validates the {app} and {env} path values.
func names(r *http.Request) (app, env string, err error) {
	app = r.PathValue("app")
	if err = core.ValidateName("app", app); err != nil {
		return
	}
	if env = r.PathValue("env"); env != "" || strings.Contains(r.URL.Path, "/envs/") {
		err = core.ValidateName("env", env)
	}
	return
}

// jsonHandler answers with status and body, or maps err.
type jsonHandler func(r *http.Request) (status int, body any, err error)

func (a *api) json(f jsonHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		status, body, err := f(r)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		writeJSON(w, status, body)
	}
}

// withBody decodes the request body into a fresh Req before calling f.
func withBody[Req any](f func(r *http.Request, req Req) (int, any, error)) jsonHandler {
	return func(r *http.Request) (int, any, error) {
		var req Req
		if err := decode(r, &req); err != nil {
			return 0, nil, err
		}
		return f(r, req)
	}
}

// ok wraps a (value, error) result as a 200 answer; nil slices become [].
func ok[T any](v T, err error) (int, any, error) {
	return http.StatusOK, nonNil(v), err
}

func accepted[T any](v T, err error) (int, any, error) {
	return http.StatusAccepted, v, err
}

func nonNil(v any) any {
	switch x := v.(type) {
	case []core.App:
		if x == nil {
			return []core.App{}
		}
	case []core.Deployment:
		if x == nil {
			return []core.Deployment{}
		}
	case []core.Release:
		if x == nil {
			return []core.Release{}
		}
	case []core.Event:
		if x == nil {
			return []core.Event{}
		}
	}
	return v
}

func (a *api) listApps(r *http.Request) (int, any, error) { return ok(a.svc.Apps(r.Context())) }

type addAppRequest struct {
	Name string `json:"name"`
	Repo string `json:"repo"`
}

func (a *api) addApp(r *http.Request, req addAppRequest) (int, any, error) {
	app, err := a.svc.AddApp(r.Context(), req.Name, req.Repo)
	return http.StatusCreated, app, err
}

func (a *api) getApp(r *http.Request) (int, any, error) {
	app, _, err := names(r)
	if err != nil {
		return 0, nil, err
	}
	return ok(a.svc.App(r.Context(), app))
}

func (a *api) removeApp(r *http.Request) (int, any, error) {
	app, _, err := names(r)
	if err != nil {
		return 0, nil, err
	}
	if err := a.svc.RemoveApp(r.Context(), app, actor(r)); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]string{"removed": app}, nil
}

type buildRequest struct {
	Ref string `json:"ref"`
}

func (a *api) build(r *http.Request, req buildRequest) (int, any, error) {
	app, _, err := names(r)
	if err != nil {
		return 0, nil, err
	}
	return ok(a.svc.Build(r.Context(), app, req.Ref, nil))
}

type deployRequest struct {
	Ref             string `json:"ref"`
	NoWait          bool   `json:"no_wait"`
	ReplaceHeld     bool   `json:"replace_held"`
	Override        bool   `json:"override"`
	Hotfix          bool   `json:"hotfix"`
	Reason          string `json:"reason"`
	WhenAllowed     bool   `json:"when_allowed"`
	WaitForApproval bool   `json:"wait_for_approval"`
}

func (a *api) deploy(r *http.Request, req deployRequest) (int, any, error) {
	app, env, err := names(r)
	if err != nil {
		return 0, nil, err
	}
	if (req.Override || req.Hotfix) && strings.TrimSpace(req.Reason) == "" {
		return 0, nil, errInvalidf("an override or a hotfix needs a reason (--reason TEXT): it goes into the timeline")
	}
	if req.Override {
		p := caller(r)
		if err := access.Check(p.user.Name, p.user.Bindings, access.Override, app, env); err != nil {
			return 0, nil, err
		}
	}
	return accepted(a.svc.Deploy(r.Context(), deploy.DeployRequest{App: app, Env: env, Ref: req.Ref, NoWait: req.NoWait, ReplaceHeld: req.ReplaceHeld, RequestedBy: actor(r),
		Options: core.DeployOptions{Override: req.Override, Hotfix: req.Hotfix, Reason: strings.TrimSpace(req.Reason), WhenAllowed: req.WhenAllowed, WaitForApproval: req.WaitForApproval}}))
}

type rollbackRequest struct {
	To         int  `json:"to"`
	Steps      int  `json:"steps"`
	NoWait     bool `json:"no_wait"`
	KeepConfig bool `json:"keep_config"`
}

func (a *api) rollback(r *http.Request, req rollbackRequest) (int, any, error) {
	app, env, err := names(r)
	if err != nil {
		return 0, nil, err
	}
	return accepted(a.svc.Rollback(r.Context(), deploy.RollbackRequest{App: app, Env: env, To: req.To, Steps: req.Steps, NoWait: req.NoWait, KeepConfig: req.KeepConfig, RequestedBy: actor(r)}))
}

func (a *api) confirm(r *http.Request) (int, any, error) {
	app, env, err := names(r)
	if err != nil {
		return 0, nil, err
	}
	return accepted(a.svc.Confirm(r.Context(), app, env, actor(r)))
}

func (a *api) stop(r *http.Request) (int, any, error) {
	app, env, err := names(r)
	if err != nil {
		return 0, nil, err
	}
	return accepted(a.svc.Stop(r.Context(), app, env, actor(r)))
}

type holdRequest struct {
	For string `json:"for"`
}

func (a *api) hold(r *http.Request, req holdRequest) (int, any, error) {
	app, env, err := names(r)
	if err != nil {
		return 0, nil, err
	}
	d, err := time.ParseDuration(req.For)
	if err != nil {
		return 0, nil, fmt.Errorf("%w: for %q is not a duration (examples: 30m, 2h)", core.ErrInvalid, req.For)
	}
	return ok(a.svc.Hold(r.Context(), app, env, d, actor(r)))
}

type configRequest struct {
	Vars    map[string]string `json:"vars"`
	Secrets map[string]string `json:"secrets"`
}

type configChangeRequest struct {
	Vars    map[string]string `json:"vars"`
	Secrets map[string]string `json:"secrets"`
	Unset   []string          `json:"unset"`
}

// replaceConfig records a version made of the body alone. Answers hold
// key names only: a ConfigResult never holds secret values.
func (a *api) replaceConfig(r *http.Request, req configRequest) (int, any, error) {
	app, env, err := names(r)
	if err != nil {
		return 0, nil, err
	}
	return ok(a.svc.ChangeConfig(r.Context(), app, env, deploy.ConfigChange{Vars: req.Vars, Secrets: req.Secrets, Replace: true, Actor: actor(r)}))
}

// changeConfig merges the body into the latest version.
func (a *api) changeConfig(r *http.Request, req configChangeRequest) (int, any, error) {
	app, env, err := names(r)
	if err != nil {
		return 0, nil, err
	}
	return ok(a.svc.ChangeConfig(r.Context(), app, env, deploy.ConfigChange{Vars: req.Vars, Secrets: req.Secrets, Unset: req.Unset, Actor: actor(r)}))
}

func (a *api) getConfig(r *http.Request) (int, any, error) {
	app, env, err := names(r)
	if err != nil {
		return 0, nil, err
	}
	version := 0
	if s := r.URL.Query().Get("version"); s != "" {
		if version, err = strconv.Atoi(s); err != nil || version <= 0 {
			return 0, nil, fmt.Errorf("%w: version %q: want a config version number (1 or more)", core.ErrInvalid, s)
		}
	}
	return ok(a.svc.Config(r.Context(), app, env, version))
}

// logs answers the end of instance logs: as text, or as JSON with
// ?format=json (one entry per instance).
func (a *api) logs(w http.ResponseWriter, r *http.Request) {
	app, env, err := names(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	q, err := queryInts(r, "bytes", "lines", "deployment")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	bytes := q[0]
	if bytes == 0 {
		bytes = defaultLogsBytes
	}
	logs, err := a.svc.Logs(r.Context(), deploy.LogsRequest{App: app, Env: env, Colour: core.Colour(r.URL.Query().Get("colour")),
		Deployment: q[2], Bytes: bytes, Lines: int(q[1])})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if r.URL.Query().Get("format") == "json" {
		writeJSON(w, http.StatusOK, logs)
		return
	}
	var buf strings.Builder
	for _, l := range logs {
		fmt.Fprintf(&buf, "==> %s (%s, #%d) <==\n", l.Instance, cmp.Or(l.Addr, string(l.Colour)), l.Release)
		if l.Error != "" {
			fmt.Fprintf(&buf, "(%s)\n", l.Error)
			continue
		}
		buf.WriteString(l.Log)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte(buf.String()))
}

func (a *api) status(r *http.Request) (int, any, error) {
	app, _, err := names(r)
	if err != nil {
		return 0, nil, err
	}
	return ok(a.svc.Status(r.Context(), app))
}

func queryInt(r *http.Request, name string) (int64, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w: %s %q: want a non-negative integer", core.ErrInvalid, name, s)
	}
	return n, nil
}

// queryInts reads several integer query parameters.
func queryInts(r *http.Request, names ...string) ([]int64, error) {
	out := make([]int64, len(names))
	for i, n := range names {
		v, err := queryInt(r, n)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

func (a *api) history(r *http.Request) (int, any, error) {
	app, _, err := names(r)
	if err != nil {
		return 0, nil, err
	}
	q, err := queryInts(r, "before", "limit")
	if err != nil {
		return 0, nil, err
	}
	return ok(a.svc.History(r.Context(), app, r.URL.Query().Get("env"), q[0], int(q[1])))
}

func (a *api) releases(r *http.Request) (int, any, error) {
	app, _, err := names(r)
	if err != nil {
		return 0, nil, err
	}
	q, err := queryInts(r, "limit")
	if err != nil {
		return 0, nil, err
	}
	return ok(a.svc.Releases(r.Context(), app, int(q[0])))
}

func deploymentID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("%w: deployment id %q", core.ErrInvalid, r.PathValue("id"))
	}
	return id, nil
}

func (a *api) cancel(r *http.Request) (int, any, error) {
	id, err := deploymentID(r)
	if err != nil {
		return 0, nil, err
	}
	return ok(a.svc.Cancel(r.Context(), id, actor(r)))
}

func (a *api) deployment(r *http.Request) (int, any, error) {
	id, err := deploymentID(r)
	if err != nil {
		return 0, nil, err
	}
	return ok(a.svc.Deployment(r.Context(), id))
}

// wait long-polls until the deployment is terminal or the timeout passes,
// then answers with the deployment as it stands.
func (a *api) wait(r *http.Request) (int, any, error) {
	id, err := deploymentID(r)
	if err != nil {
		return 0, nil, err
	}
	timeout := DefaultWait
	if s := r.URL.Query().Get("timeout"); s != "" {
		if timeout, err = time.ParseDuration(s); err != nil || timeout <= 0 || timeout > MaxWait {
			return 0, nil, fmt.Errorf("%w: timeout %q: want a duration up to %s", core.ErrInvalid, s, MaxWait)
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	d, err := a.svc.Wait(ctx, id)
	if errors.Is(err, context.DeadlineExceeded) {
		err = nil
	}
	return ok(d, err)
}

// appQuery validates the optional ?app= filter.
func appQuery(r *http.Request) (string, error) {
	app := r.URL.Query().Get("app")
	if app != "" {
		if err := core.ValidateName("app", app); err != nil {
			return "", err
		}
	}
	return app, nil
}

func (a *api) events(r *http.Request) (int, any, error) {
	app, err := appQuery(r)
	if err != nil {
		return 0, nil, err
	}
	q, err := queryInts(r, "after", "limit")
	if err != nil {
		return 0, nil, err
	}
	return ok(a.svc.Events(r.Context(), app, q[0], int(q[1])))
}

// stream is the event stream: events after `after` (or Last-Event-ID) from
// the store, then live ones, each with its id so a client can resume.
func (a *api) stream(w http.ResponseWriter, r *http.Request) {
	app, err := appQuery(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	// after=now skips the replay: only events from now on.
	now := r.URL.Query().Get("after") == "now"
	var after int64
	if !now {
		if after, err = queryInt(r, "after"); err != nil {
			a.fail(w, r, err)
			return
		}
	}
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		if n, err := strconv.ParseInt(id, 10, 64); err == nil && n > after {
			after = n
		}
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		a.fail(w, r, errors.New("streaming unsupported"))
		return
	}
	live, cancel := a.svc.Subscribe() // subscribe first so nothing falls between replay and live
	defer cancel()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(200)
	send := func(e core.Event) bool {
		if e.ID <= after || (app != "" && e.App != app) {
			return true
		}
		b, _ := json.Marshal(e)
		if _, err := fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", e.ID, e.Type, b); err != nil {
			return false
		}
		after = e.ID
		fl.Flush()
		return true
	}
	for !now {
		es, err := a.svc.Events(r.Context(), app, after, sseReplayLimit)
		if err != nil {
			return
		}
		for _, e := range es {
			if !send(e) {
				return
			}
		}
		if len(es) < sseReplayLimit {
			break
		}
	}
	fl.Flush()
	hb := time.NewTicker(sseHeartbeat)
	defer hb.Stop()
	// Events written by another server (or missed by a slow subscriber)
	// reach this stream from the store.
	poll := time.NewTicker(ssePoll)
	defer poll.Stop()
	// seen is the highest event ID this stream has looked at, of any app:
	// a gap in it, not in the filtered IDs sent, means events were missed.
	seen := after
	catchUp := func() bool {
		for {
			es, err := a.svc.Events(r.Context(), app, after, sseReplayLimit)
			if err != nil {
				return false
			}
			for _, x := range es {
				if !send(x) {
					return false
				}
			}
			if len(es) < sseReplayLimit {
				return true
			}
		}
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case e, ok := <-live:
			if !ok {
				return
			}
			if now {
				// The first live event sets the position.
				now, after, seen = false, e.ID-1, e.ID-1
			}
			if e.ID > seen+1 && !catchUp() {
				return
			}
			if e.ID > seen {
				seen = e.ID
			}
			if !send(e) {
				return
			}
		case <-poll.C:
			if !now && !catchUp() {
				return
			}
		case <-hb.C:
			if _, err := fmt.Fprint(w, ": heartbeat\n\n"); err != nil {
				return
			}
			fl.Flush()
		}
	}
}
