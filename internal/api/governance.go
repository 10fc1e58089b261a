package api

import (
	"io"
	"net/http"
	"strings"

	"github.com/cutover/cutover/internal/access"
	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/policy"
)

// Routes of governance: CI results, reviews, approvals, locks.
func (a *api) routeGovernance(mux *http.ServeMux) {
	// CI reports results with a deployer's token (it builds and deploys).
	mux.HandleFunc("POST /api/v1/apps/{app}/checks", a.allow(access.Build, appWide, a.json(withBody(a.reportCheck))))
	mux.HandleFunc("GET /api/v1/apps/{app}/commits/{sha}/checks", a.allow(access.Read, appWide, a.json(a.checks)))
	mux.HandleFunc("POST /api/v1/apps/{app}/reviews", a.allow(access.Review, appWide, a.json(withBody(a.review))))
	mux.HandleFunc("POST /api/v1/apps/{app}/envs/{env}/approvals", a.allow(access.Approve, inPath, a.json(withBody(a.approve))))
	mux.HandleFunc("PUT /api/v1/apps/{app}/envs/{env}/lock", a.allow(access.Lock, inPath, a.json(withBody(a.lock))))
	mux.HandleFunc("DELETE /api/v1/apps/{app}/envs/{env}/lock", a.allow(access.Lock, inPath, a.json(a.unlock)))
	mux.HandleFunc("PUT /api/v1/apps/{app}/policy", a.allow(access.Policy, everythingOf, a.setPolicy))
	mux.HandleFunc("POST /api/v1/apps/{app}/promotions", a.allow(access.Promote, toEnv, a.json(withBody(a.promote))))
	mux.HandleFunc("POST /api/v1/apps/{app}/envs/{env}/recycle", a.allow(access.Deploy, inPath, a.json(a.recycle)))
	mux.HandleFunc("GET /api/v1/apps/{app}/policy", a.allow(access.Read, appWide, a.json(a.getPolicy)))
	mux.HandleFunc("GET /api/v1/apps/{app}/envs/{env}/policy/check", a.allow(access.Read, inPath, a.json(a.checkPolicy)))
}

type checkRequest struct {
	SHA   string `json:"sha"`
	Name  string `json:"name"`
	State string `json:"state"`
	URL   string `json:"url"`
}

func (a *api) reportCheck(r *http.Request, req checkRequest) (int, any, error) {
	app, _, err := names(r)
	if err != nil {
		return 0, nil, err
	}
	return ok(a.svc.ReportCheck(r.Context(), core.CommitStatus{App: app, SHA: req.SHA, Name: req.Name, State: core.CheckState(req.State), URL: req.URL, By: actor(r)}))
}

func (a *api) checks(r *http.Request) (int, any, error) {
	app, _, err := names(r)
	if err != nil {
		return 0, nil, err
	}
	cs, err := a.svc.Checks(r.Context(), app, r.PathValue("sha"))
	if cs == nil {
		cs = []core.CommitStatus{}
	}
	return ok(cs, err)
}

type reviewRequest struct {
	SHA string `json:"sha"`
}

func (a *api) review(r *http.Request, req reviewRequest) (int, any, error) {
	app, _, err := names(r)
	if err != nil {
		return 0, nil, err
	}
	return ok(a.svc.ReviewCommit(r.Context(), app, req.SHA, actor(r)))
}

type approveRequest struct {
	Release int    `json:"release"`
	SHA     string `json:"sha"`
}

func (a *api) approve(r *http.Request, req approveRequest) (int, any, error) {
	app, env, err := names(r)
	if err != nil {
		return 0, nil, err
	}
	return ok(a.svc.Approve(r.Context(), core.Approval{App: app, Env: env, Release: req.Release, SHA: req.SHA, By: actor(r)}))
}

type lockRequest struct {
	Reason string `json:"reason"`
}

func (a *api) lock(r *http.Request, req lockRequest) (int, any, error) {
	app, env, err := names(r)
	if err != nil {
		return 0, nil, err
	}
	return ok(a.svc.Lock(r.Context(), app, env, req.Reason, actor(r)))
}

func (a *api) unlock(r *http.Request) (int, any, error) {
	app, env, err := names(r)
	if err != nil {
		return 0, nil, err
	}
	if err := a.svc.Unlock(r.Context(), app, env, actor(r)); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]string{"unlocked": app + "/" + env}, nil
}

// everythingOf: a change to the whole of app {app} (every environment).
func everythingOf(_ *api, r *http.Request) (string, string) { return r.PathValue("app"), core.AnyScope }

// setPolicy takes the policy file as the request body (YAML).
func (a *api) setPolicy(w http.ResponseWriter, r *http.Request) {
	app, _, err := names(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, policy.MaxPolicyBytes+1))
	if err != nil {
		a.fail(w, r, errInvalidf("policy body: %v", err))
		return
	}
	pv, err := a.svc.SetPolicy(r.Context(), app, body, actor(r))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, pv)
}

func (a *api) getPolicy(r *http.Request) (int, any, error) {
	app, _, err := names(r)
	if err != nil {
		return 0, nil, err
	}
	return ok(a.svc.Policy(r.Context(), app))
}

func (a *api) checkPolicy(r *http.Request) (int, any, error) {
	app, env, err := names(r)
	if err != nil {
		return 0, nil, err
	}
	return ok(a.svc.CheckPolicy(r.Context(), app, env, r.URL.Query().Get("commit"), actor(r)))
}

// toEnv: a promotion acts on its target environment (?to= is in the body,
// so the handler checks it again; the route needs the app).
func toEnv(_ *api, r *http.Request) (string, string) { return r.PathValue("app"), access.AnyEnv }

type promoteRequest struct {
	From            string `json:"from"`
	To              string `json:"to"`
	Override        bool   `json:"override"`
	Reason          string `json:"reason"`
	WhenAllowed     bool   `json:"when_allowed"`
	WaitForApproval bool   `json:"wait_for_approval"`
}

func (a *api) promote(r *http.Request, req promoteRequest) (int, any, error) {
	app, _, err := names(r)
	if err != nil {
		return 0, nil, err
	}
	if err := core.ValidateName("env", req.To); err != nil {
		return 0, nil, err
	}
	p := caller(r)
	if err := access.Check(p.user.Name, p.user.Bindings, access.Promote, app, req.To); err != nil {
		return 0, nil, err
	}
	if req.Override {
		if strings.TrimSpace(req.Reason) == "" {
			return 0, nil, errInvalidf("an override needs a reason (--reason TEXT)")
		}
		if err := access.Check(p.user.Name, p.user.Bindings, access.Override, app, req.To); err != nil {
			return 0, nil, err
		}
	}
	return accepted(a.svc.Promote(r.Context(), app, req.From, req.To, actor(r),
		core.DeployOptions{Override: req.Override, Reason: strings.TrimSpace(req.Reason), WhenAllowed: req.WhenAllowed, WaitForApproval: req.WaitForApproval}))
}

func (a *api) recycle(r *http.Request) (int, any, error) {
	app, env, err := names(r)
	if err != nil {
		return 0, nil, err
	}
	return accepted(a.svc.Recycle(r.Context(), app, env, actor(r)))
}
