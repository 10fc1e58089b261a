package api

import (
	"io"
	"net/http"

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
