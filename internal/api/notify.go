package api

import (
	"context"
	"net/http"

	"github.com/cutover/cutover/internal/access"
	"github.com/cutover/cutover/internal/core"
)

// Notifications manages notification subscriptions (internal/notify).
type Notifications interface {
	// Add checks and stores a subscription; the answer carries its secret,
	// the only time it is shown.
	Add(ctx context.Context, sub core.Subscription) (core.Subscription, error)
	// List returns app's subscriptions without their secrets.
	List(ctx context.Context, app string) ([]core.Subscription, error)
	Get(ctx context.Context, id string) (core.Subscription, error)
	Remove(ctx context.Context, id string) error
	Test(ctx context.Context, id, actor string) (core.Delivery, error)
	Log(ctx context.Context, app string, limit int) ([]core.Delivery, error)
}

// Routes of notification subscriptions: admin only (access.Notify), since
// a subscription sends an app's events out of the server.
func (a *api) routeNotify(mux *http.ServeMux) {
	if a.notify == nil {
		return
	}
	mux.HandleFunc("POST /api/v1/apps/{app}/notify", a.allow(access.Notify, everythingOf, a.json(withBody(a.addSubscription))))
	mux.HandleFunc("GET /api/v1/apps/{app}/notify", a.allow(access.Notify, everythingOf, a.json(a.listSubscriptions)))
	mux.HandleFunc("GET /api/v1/apps/{app}/notify/log", a.allow(access.Notify, everythingOf, a.json(a.notifyLog)))
	mux.HandleFunc("DELETE /api/v1/notify/{id}", a.allow(access.Notify, ofSubscription, a.json(a.removeSubscription)))
	mux.HandleFunc("POST /api/v1/notify/{id}/test", a.allow(access.Notify, ofSubscription, a.json(a.testSubscription)))
}

// ofSubscription: the app of subscription {id}; an unknown one needs
// every app (the handler then answers 404 to those allowed).
func ofSubscription(a *api, r *http.Request) (string, string) {
	sub, err := a.notify.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return core.AnyScope, core.AnyScope
	}
	return sub.App, core.AnyScope
}

type subscriptionRequest struct {
	Events  []string `json:"events"`
	Channel string   `json:"channel"`
	URL     string   `json:"url"`
}

func (a *api) addSubscription(r *http.Request, req subscriptionRequest) (int, any, error) {
	app, _, err := names(r)
	if err != nil {
		return 0, nil, err
	}
	if _, err := a.svc.App(r.Context(), app); err != nil {
		return 0, nil, err
	}
	sub, err := a.notify.Add(r.Context(), core.Subscription{App: app, Events: req.Events, Channel: core.NotifyChannel(req.Channel), URL: req.URL, CreatedBy: actor(r)})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, sub, nil
}

func (a *api) listSubscriptions(r *http.Request) (int, any, error) {
	app, _, err := names(r)
	if err != nil {
		return 0, nil, err
	}
	subs, err := a.notify.List(r.Context(), app)
	if subs == nil {
		subs = []core.Subscription{}
	}
	return ok(subs, err)
}

func (a *api) notifyLog(r *http.Request) (int, any, error) {
	app, _, err := names(r)
	if err != nil {
		return 0, nil, err
	}
	limit, err := queryInt(r, "limit")
	if err != nil {
		return 0, nil, err
	}
	ds, err := a.notify.Log(r.Context(), app, int(limit))
	if ds == nil {
		ds = []core.Delivery{}
	}
	return ok(ds, err)
}

func (a *api) removeSubscription(r *http.Request) (int, any, error) {
	id := r.PathValue("id")
	if err := a.notify.Remove(r.Context(), id); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]string{"removed": id}, nil
}

func (a *api) testSubscription(r *http.Request) (int, any, error) {
	d, err := a.notify.Test(r.Context(), r.PathValue("id"), actor(r))
	if err != nil && d.Status == core.DeliveryFailed {
		// The attempt was made and recorded: its outcome is the answer.
		return http.StatusOK, d, nil
	}
	return ok(d, err)
}
