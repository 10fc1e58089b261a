package api

import (
	"net/http"

	"github.com/cutover/cutover/internal/core"
)

// Routes of governance: CI results, reviews, approvals, locks.
func (a *api) routeGovernance(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/v1/apps/{app}/checks", a.json(withBody(a.reportCheck)))
	mux.HandleFunc("GET /api/v1/apps/{app}/commits/{sha}/checks", a.json(a.checks))
	mux.HandleFunc("POST /api/v1/apps/{app}/reviews", a.json(withBody(a.review)))
	mux.HandleFunc("POST /api/v1/apps/{app}/envs/{env}/approvals", a.json(withBody(a.approve)))
	mux.HandleFunc("PUT /api/v1/apps/{app}/envs/{env}/lock", a.json(withBody(a.lock)))
	mux.HandleFunc("DELETE /api/v1/apps/{app}/envs/{env}/lock", a.json(a.unlock))
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

// actor names who makes the request. Until users exist every token is the
// server's own, recorded as "api".
func actor(r *http.Request) string { return "api" }
