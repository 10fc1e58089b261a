package api

import (
	"net/http"
	"strconv"

	"github.com/cutover/cutover/internal/access"
	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/release"
)

// routeReleases mounts release management under /api/v1/apps/{app}/candidates.
func (a *api) routeReleases(mux *http.ServeMux) {
	if a.rel == nil {
		return
	}
	mux.HandleFunc("GET /api/v1/apps/{app}/candidates", a.allow(access.Read, appWide, a.json(a.listCandidates)))
	mux.HandleFunc("POST /api/v1/apps/{app}/candidates", a.allow(access.Release, inPath, a.json(withBody(a.cutCandidate))))
	mux.HandleFunc("GET /api/v1/apps/{app}/candidates/{rc}", a.allow(access.Read, appWide, a.json(a.getCandidate)))
	mux.HandleFunc("PUT /api/v1/apps/{app}/candidates/{rc}/notes", a.allow(access.Release, inPath, a.json(withBody(a.setNotes))))
	mux.HandleFunc("POST /api/v1/apps/{app}/candidates/{rc}/check", a.allow(access.Release, inPath, a.json(a.checkCandidate)))
	mux.HandleFunc("POST /api/v1/apps/{app}/candidates/{rc}/finish", a.allow(access.Release, inPath, a.json(withBody(a.finishCandidate))))
	mux.HandleFunc("POST /api/v1/apps/{app}/candidates/{rc}/abandon", a.allow(access.Release, inPath, a.json(a.abandonCandidate)))
	mux.HandleFunc("GET /api/v1/apps/{app}/diff", a.allow(access.Read, appWide, a.json(a.diff)))
}

func (a *api) listCandidates(r *http.Request) (int, any, error) {
	app, _, err := names(r)
	if err != nil {
		return 0, nil, err
	}
	cs, err := a.rel.List(r.Context(), app)
	if cs == nil {
		cs = []core.Candidate{}
	}
	return http.StatusOK, cs, err
}

type cutRequest struct {
	Patch   bool   `json:"patch"`
	From    string `json:"from"`
	Version string `json:"version"`
	Bump    string `json:"bump"`
	Since   string `json:"since"`
}

func (a *api) cutCandidate(r *http.Request, req cutRequest) (int, any, error) {
	app, _, err := names(r)
	if err != nil {
		return 0, nil, err
	}
	c, err := a.rel.Cut(r.Context(), release.CutRequest{App: app, Patch: req.Patch, From: req.From, Version: req.Version, Bump: req.Bump, Since: req.Since})
	return http.StatusCreated, c, err
}

func (a *api) getCandidate(r *http.Request) (int, any, error) {
	app, _, err := names(r)
	if err != nil {
		return 0, nil, err
	}
	return ok(a.rel.Get(r.Context(), app, r.PathValue("rc")))
}

type notesRequest struct {
	Notes string `json:"notes"`
}

func (a *api) setNotes(r *http.Request, req notesRequest) (int, any, error) {
	app, _, err := names(r)
	if err != nil {
		return 0, nil, err
	}
	return ok(a.rel.SetNotes(r.Context(), app, r.PathValue("rc"), req.Notes))
}

func (a *api) checkCandidate(r *http.Request) (int, any, error) {
	app, _, err := names(r)
	if err != nil {
		return 0, nil, err
	}
	return ok(a.rel.Check(r.Context(), app, r.PathValue("rc")))
}

type finishRequest struct {
	TrueUp bool     `json:"true_up"`
	Drop   []string `json:"drop"`
}

func (a *api) finishCandidate(r *http.Request, req finishRequest) (int, any, error) {
	app, _, err := names(r)
	if err != nil {
		return 0, nil, err
	}
	return ok(a.rel.Finish(r.Context(), app, r.PathValue("rc"), release.FinishOptions{TrueUp: req.TrueUp, Drop: req.Drop}))
}

func (a *api) abandonCandidate(r *http.Request) (int, any, error) {
	app, _, err := names(r)
	if err != nil {
		return 0, nil, err
	}
	return ok(a.rel.Abandon(r.Context(), app, r.PathValue("rc")))
}

func (a *api) diff(r *http.Request) (int, any, error) {
	app, _, err := names(r)
	if err != nil {
		return 0, nil, err
	}
	from, err1 := strconv.Atoi(r.URL.Query().Get("from"))
	to, err2 := strconv.Atoi(r.URL.Query().Get("to"))
	if err1 != nil || err2 != nil {
		return 0, nil, errInvalidf("from and to must be release numbers, got %q and %q", r.URL.Query().Get("from"), r.URL.Query().Get("to"))
	}
	return ok(a.rel.Diff(r.Context(), app, from, to))
}
