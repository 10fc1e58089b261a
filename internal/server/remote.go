package server

import (
	"context"
	"fmt"
	"net/url"

	"github.com/cutover/cutover/internal/deploy"
	"github.com/cutover/cutover/internal/proxy"
)

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
	ss := serviceSpec(spec)
	req := proxy.AdminRequest{Hosts: ss.Hosts, Targets: ss.Targets, Health: ss.Health, Force: true}
	if err := r.admin.Do(ctx, "PUT", "/services/"+url.PathEscape(spec.Service), req, nil); err != nil {
		return fmt.Errorf("route %s on the proxy: %w", spec.Service, err)
	}
	return nil
}

// Stats implements deploy.Router.
func (r *RemoteRouter) Stats(service string) (deploy.RouteStats, error) {
	var st proxy.ServiceStatus
	if err := r.admin.Do(context.Background(), "GET", "/services/"+url.PathEscape(service), nil, &st); err != nil {
		return deploy.RouteStats{}, err
	}
	c := st.Active.Counters
	return deploy.RouteStats{Requests: c.Requests, Errors5xx: c.Errors5xx, ConnErrors: c.ConnErrors}, nil
}
