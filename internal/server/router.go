package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"

	"github.com/cutover/cutover/internal/deploy"
	"github.com/cutover/cutover/internal/proxy"
)

// Router adapts the embedded proxies to deploy.Router. Every environment
// has its own public listen address; environments that share an address
// share one proxy and are told apart by host.
type Router struct {
	stateDir string
	log      *slog.Logger

	mu       sync.Mutex
	proxies  map[string]*proxy.Proxy // listen address -> proxy
	services map[string]string       // service -> listen address
}

// NewRouter returns a Router whose proxies persist their routes under stateDir.
func NewRouter(stateDir string, log *slog.Logger) *Router {
	return &Router{stateDir: stateDir, log: log, proxies: map[string]*proxy.Proxy{}, services: map[string]string{}}
}

// Route implements deploy.Router. The deploy machine has already passed the
// health gate, so the switch is forced.
func (r *Router) Route(ctx context.Context, spec deploy.RouteSpec) error {
	service, listen := spec.Service, spec.Listen
	p, err := r.proxyFor(listen)
	if err != nil {
		return err
	}
	if err := p.SetService(ctx, serviceSpec(spec)); err != nil {
		return fmt.Errorf("route %s on %s: %w", service, listen, err)
	}
	r.mu.Lock()
	old := r.services[service]
	r.services[service] = listen
	oldP := r.proxies[old]
	r.mu.Unlock()
	if old != "" && old != listen && oldP != nil {
		// The environment moved to another address: stop routing it on the old one.
		if err := oldP.RemoveService(ctx, service); err != nil && !errors.Is(err, proxy.ErrNotFound) {
			r.log.Warn("remove service from old listener", "service", service, "listen", old, "err", err)
		}
	}
	return nil
}

// serviceSpec is the proxy service for a route: forced, since the deploy
// machine health-checked the targets already.
func serviceSpec(spec deploy.RouteSpec) proxy.ServiceSpec {
	ss := proxy.ServiceSpec{Name: spec.Service, Targets: spec.Targets, Force: true}
	ss.Health.Path = spec.HealthPath
	if spec.Host != "" {
		ss.Hosts = []string{spec.Host}
	}
	return ss
}

// Stats implements deploy.Router.
func (r *Router) Stats(ctx context.Context, service string) (deploy.RouteStats, error) {
	r.mu.Lock()
	p := r.proxies[r.services[service]]
	r.mu.Unlock()
	if p == nil {
		return deploy.RouteStats{}, fmt.Errorf("service %q: not routed", service)
	}
	st, err := p.Stats(service)
	if err != nil {
		return deploy.RouteStats{}, err
	}
	return deploy.RouteStats{Requests: st.Requests, Errors5xx: st.Errors5xx, ConnErrors: st.ConnErrors}, nil
}

// proxyFor returns the proxy serving listen, starting it on first use.
func (r *Router) proxyFor(listen string) (*proxy.Proxy, error) {
	if _, _, err := net.SplitHostPort(listen); err != nil {
		return nil, fmt.Errorf("listen address %q: %w", listen, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if p := r.proxies[listen]; p != nil {
		return p, nil
	}
	dir := filepath.Join(r.stateDir, strings.NewReplacer(":", "_", "[", "", "]", "").Replace(listen))
	p, err := proxy.New(proxy.Config{StateDir: dir, Logger: r.log.With("listen", listen)})
	if err != nil {
		return nil, fmt.Errorf("proxy for %s: %w", listen, err)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		_ = p.Shutdown(context.Background())
		return nil, fmt.Errorf("listen %s: %w", listen, err)
	}
	go func() {
		if err := p.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			r.log.Error("proxy stopped", "listen", listen, "err", err)
		}
	}()
	r.proxies[listen] = p
	return p, nil
}

// Close shuts every proxy down.
func (r *Router) Close() {
	r.mu.Lock()
	ps := r.proxies
	r.proxies = map[string]*proxy.Proxy{}
	r.mu.Unlock()
	for _, p := range ps {
		_ = p.Shutdown(context.Background())
	}
}

// Remove implements deploy.Router.
func (r *Router) Remove(ctx context.Context, service string) error {
	r.mu.Lock()
	listen := r.services[service]
	p := r.proxies[listen]
	delete(r.services, service)
	r.mu.Unlock()
	if p == nil {
		return nil
	}
	if err := p.RemoveService(ctx, service); err != nil && !errors.Is(err, proxy.ErrNotFound) {
		return fmt.Errorf("remove %s from %s: %w", service, listen, err)
	}
	return nil
}
