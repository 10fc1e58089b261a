package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/cutover/cutover/internal/deploy"
	"github.com/cutover/cutover/internal/proxy"
)

// remoteTimeout bounds one call to the proxy's admin API: a wedged proxy
// fails the step that called it instead of stalling it.
const remoteTimeout = 15 * time.Second

// RemoteRouter drives a proxy that runs as its own process (`cutover proxy
// run`) through its admin API, so a control-plane crash or restart never
// interrupts traffic. That proxy serves every environment on its own
// listener; environments are told apart by their manifest `host`.
type RemoteRouter struct {
	admin *proxy.AdminClient
}

// NewRemoteRouter returns a router for the proxy admin endpoint (a unix
// socket path or a loopback host:port with token).
func NewRemoteRouter(endpoint, token string) (*RemoteRouter, error) {
	c, err := proxy.NewAdminClient(endpoint, token)
	if err != nil {
		return nil, err
	}
	return &RemoteRouter{admin: c}, nil
}

// Route implements deploy.Router.
func (r *RemoteRouter) Route(ctx context.Context, spec deploy.RouteSpec) error {
	ctx, cancel := context.WithTimeout(ctx, remoteTimeout)
	defer cancel()
	ss := serviceSpec(spec)
	req := proxy.AdminRequest{Hosts: ss.Hosts, Targets: ss.Targets, Health: ss.Health, Force: true}
	if err := r.admin.Do(ctx, "PUT", "/services/"+url.PathEscape(spec.Service), req, nil); err != nil {
		return fmt.Errorf("route %s on the proxy: %w", spec.Service, err)
	}
	return nil
}

// Stats implements deploy.Router.
func (r *RemoteRouter) Stats(ctx context.Context, service string) (deploy.RouteStats, error) {
	ctx, cancel := context.WithTimeout(ctx, remoteTimeout)
	defer cancel()
	var st proxy.ServiceStatus
	if err := r.admin.Do(ctx, "GET", "/services/"+url.PathEscape(service), nil, &st); err != nil {
		return deploy.RouteStats{}, err
	}
	c := st.Active.Counters
	return deploy.RouteStats{Requests: c.Requests, Errors5xx: c.Errors5xx, ConnErrors: c.ConnErrors}, nil
}

// Remove implements deploy.Router.
func (r *RemoteRouter) Remove(ctx context.Context, service string) error {
	ctx, cancel := context.WithTimeout(ctx, remoteTimeout)
	defer cancel()
	err := r.admin.Do(ctx, "DELETE", "/services/"+url.PathEscape(service), nil, nil)
	var ae *proxy.AdminError
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove %s from the proxy: %w", service, err)
	}
	return nil
}
