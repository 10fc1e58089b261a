// Package proxy is cutover's data plane: a reverse proxy whose services
// each have an active target set (the live colour), optionally a standby
// set and a canary split, switched atomically and drained in the
// background. It persists committed routes and restores them on start, so
// it can run inside the control plane or as its own process.
package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Every default in one place; docs/proxy.md documents them.
const (
	DefaultDrainTimeout          = 30 * time.Second
	DefaultHealthPath            = "/up"
	DefaultHealthInterval        = 1 * time.Second
	DefaultHealthTimeout         = 2 * time.Second
	DefaultHealthyThreshold      = 1
	DefaultUnhealthyThreshold    = 3
	DefaultGateTimeout           = 10 * time.Second // how long a non-forced switch waits for the new set to pass
	DefaultPassiveFailures       = 5                // consecutive connection errors or 5xx that eject a target
	DefaultEjectFor              = 10 * time.Second
	DefaultMaxBodyBytes          = 100 << 20
	DefaultDialTimeout           = 5 * time.Second
	DefaultResponseHeaderTimeout = 60 * time.Second
	DefaultIdleConnTimeout       = 90 * time.Second
	DefaultMaxIdlePerTarget      = 256
	DefaultPauseQueueTimeout     = 30 * time.Second
	DefaultReadHeaderTimeout     = 30 * time.Second
	DefaultIdleTimeout           = 120 * time.Second
	MaxTargets                   = 256
	MaxHosts                     = 64
	stateFile                    = "routes.json"

	// The admin server's bounds (AdminLimits): a client that is slow or
	// idle, with or without a token, holds a connection this long at most.
	DefaultAdminReadHeaderTimeout = 5 * time.Second
	DefaultAdminReadTimeout       = 30 * time.Second
	DefaultAdminWriteTimeout      = adminClientTimeout + time.Minute // a switch waits for the health gate
	DefaultAdminIdleTimeout       = 60 * time.Second
	DefaultAdminMaxHeaderBytes    = 64 << 10
	DefaultAdminMaxConns          = 64
)

// Sentinel errors that callers (the admin API, the control plane) branch on.
var (
	ErrInvalid   = errors.New("invalid")
	ErrNotFound  = errors.New("not found")
	ErrUnhealthy = errors.New("unhealthy")
)

// Config configures a Proxy.
type Config struct {
	// StateDir is where committed routes are persisted; "" keeps them in memory only.
	StateDir string
	Logger   *slog.Logger
	// TLS, when set, serves HTTPS (and HTTP/2) on every listener.
	TLS *tls.Config

	MaxBodyBytes          int64
	DialTimeout           time.Duration
	ResponseHeaderTimeout time.Duration
	IdleConnTimeout       time.Duration
	MaxIdlePerTarget      int
}

// Proxy routes requests to services. All methods are safe for concurrent use.
type Proxy struct {
	cfg Config
	log *slog.Logger

	table atomic.Pointer[table] // the routing table the hot path reads without a lock

	mu       sync.Mutex // serialises changes; the hot path never takes it
	services map[string]*service
	servers  []*http.Server
	closed   bool
	draining sync.WaitGroup

	stopHealth chan struct{}
	healthWG   sync.WaitGroup
}

// New returns a proxy, restoring the routes persisted in cfg.StateDir.
func New(cfg Config) (*Proxy, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.ResponseHeaderTimeout <= 0 {
		cfg.ResponseHeaderTimeout = DefaultResponseHeaderTimeout
	}
	if cfg.IdleConnTimeout <= 0 {
		cfg.IdleConnTimeout = DefaultIdleConnTimeout
	}
	if cfg.MaxIdlePerTarget <= 0 {
		cfg.MaxIdlePerTarget = DefaultMaxIdlePerTarget
	}
	p := &Proxy{cfg: cfg, log: cfg.Logger, services: map[string]*service{}, stopHealth: make(chan struct{})}
	p.table.Store(&table{})
	if err := p.restore(); err != nil {
		return nil, err
	}
	p.healthWG.Add(1)
	go p.healthLoop()
	return p, nil
}

// Serve serves the data plane on ln until Shutdown. Call it once per listener.
func (p *Proxy) Serve(ln net.Listener) error {
	srv := &http.Server{
		Handler:           p,
		ReadHeaderTimeout: DefaultReadHeaderTimeout,
		IdleTimeout:       DefaultIdleTimeout,
		ErrorLog:          slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
		TLSConfig:         p.cfg.TLS,
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return http.ErrServerClosed
	}
	p.servers = append(p.servers, srv)
	p.mu.Unlock()
	if p.cfg.TLS != nil {
		return srv.ServeTLS(ln, "", "")
	}
	return srv.Serve(ln)
}

// Shutdown stops accepting requests, waits for in-flight ones (up to ctx),
// and stops health checks. Persisted routes stay for the next start.
func (p *Proxy) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	servers := p.servers
	svcs := make([]*service, 0, len(p.services))
	for _, s := range p.services {
		svcs = append(svcs, s)
	}
	p.mu.Unlock()
	var errs []error
	for _, s := range servers {
		if err := s.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	close(p.stopHealth)
	p.healthWG.Wait()
	for _, s := range svcs {
		s.closeAll()
	}
	return errors.Join(errs...)
}

// ServiceSpec is a service's desired routing. Zero values take defaults.
type ServiceSpec struct {
	Name         string        `json:"name"`
	Hosts        []string      `json:"hosts,omitempty"`       // empty: every host
	PathPrefix   string        `json:"path_prefix,omitempty"` // empty: every path
	Targets      []string      `json:"targets"`               // host:port of the active set
	Health       HealthCheck   `json:"health"`
	DrainTimeout time.Duration `json:"drain_timeout,omitempty"`
	// Force switches without waiting for the new set's health gate.
	Force bool `json:"force,omitempty"`
}

// HealthCheck is the active HTTP check run against each target.
type HealthCheck struct {
	Path               string        `json:"path,omitempty"`
	Interval           time.Duration `json:"interval,omitempty"`
	Timeout            time.Duration `json:"timeout,omitempty"`
	HealthyThreshold   int           `json:"healthy_threshold,omitempty"`
	UnhealthyThreshold int           `json:"unhealthy_threshold,omitempty"`
}

func (h *HealthCheck) defaults() {
	if h.Path == "" {
		h.Path = DefaultHealthPath
	}
	if h.Interval <= 0 {
		h.Interval = DefaultHealthInterval
	}
	if h.Timeout <= 0 {
		h.Timeout = DefaultHealthTimeout
	}
	if h.HealthyThreshold <= 0 {
		h.HealthyThreshold = DefaultHealthyThreshold
	}
	if h.UnhealthyThreshold <= 0 {
		h.UnhealthyThreshold = DefaultUnhealthyThreshold
	}
}

// SetService creates or updates a service. When the targets change, the new
// set must pass its health gate (unless Force), then becomes active
// atomically; the old set becomes the standby and drains in the background.
// It returns once switched, not drained. An invalid spec changes nothing.
func (p *Proxy) SetService(ctx context.Context, spec ServiceSpec) error {
	if err := spec.validate(); err != nil {
		return err
	}
	spec.Health.defaults()
	if spec.DrainTimeout <= 0 {
		spec.DrainTimeout = DefaultDrainTimeout
	}
	p.mu.Lock()
	cur := p.services[spec.Name]
	if err := p.checkConflicts(spec); err != nil {
		p.mu.Unlock()
		return err
	}
	p.mu.Unlock()

	var next *targetSet
	if cur == nil || !sameTargets(cur.active.Load().addrs, spec.Targets) {
		next = newTargetSet(spec.Targets, p)
		if !spec.Force {
			if err := next.gate(ctx, spec.Health, DefaultGateTimeout); err != nil {
				next.closeIdle()
				return err
			}
		}
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("proxy is shut down")
	}
	if err := p.checkConflicts(spec); err != nil { // re-check: another change may have landed
		return err
	}
	svc := p.services[spec.Name]
	if svc == nil {
		svc = &service{name: spec.Name}
		p.services[spec.Name] = svc
	}
	prevSpec := svc.spec
	svc.spec = spec
	svc.spec.Force = false
	if next != nil {
		old := svc.active.Swap(next)
		if old != nil {
			svc.setStandby(old)
			p.drain(svc, old, spec.DrainTimeout)
		}
	}
	p.rebuild()
	if err := p.persist(); err != nil {
		// Keep serving what was switched (traffic already moved), but report it.
		p.log.Error("persist routes", "err", err)
		_ = prevSpec
		return fmt.Errorf("switched, but persisting routes failed: %w", err)
	}
	p.log.Info("service set", "service", spec.Name, "targets", spec.Targets, "hosts", spec.Hosts)
	return nil
}

// SwitchToStandby makes the standby set (the previous colour) active again:
// the proxy-level instant rollback. It is health-gated unless force.
func (p *Proxy) SwitchToStandby(ctx context.Context, name string, force bool) error {
	p.mu.Lock()
	svc := p.services[name]
	var spec ServiceSpec
	var standby *targetSet
	if svc != nil {
		spec = svc.spec
		standby = svc.standby.Load()
	}
	p.mu.Unlock()
	if svc == nil {
		return fmt.Errorf("%w: service %q", ErrNotFound, name)
	}
	if standby == nil {
		return fmt.Errorf("%w: service %q has no standby set to switch to", ErrInvalid, name)
	}
	spec.Targets = append([]string(nil), standby.addrs...)
	spec.Force = force
	return p.SetService(ctx, spec)
}

// SetCanary sends percent of the service's requests to targets (0 removes
// the canary). With sticky, a client keeps its side via a cookie.
func (p *Proxy) SetCanary(ctx context.Context, name string, targets []string, percent int, sticky bool) error {
	if percent < 0 || percent > 100 {
		return fmt.Errorf("%w: percent %d: want 0-100", ErrInvalid, percent)
	}
	if percent > 0 {
		if err := validateTargets(targets); err != nil {
			return err
		}
	}
	// The spec changes under p.mu (SetService): copy what the gate needs
	// under the lock, not while probing.
	p.mu.Lock()
	svc := p.services[name]
	var health HealthCheck
	if svc != nil {
		health = svc.spec.Health
	}
	p.mu.Unlock()
	if svc == nil {
		return fmt.Errorf("%w: service %q", ErrNotFound, name)
	}
	var set *targetSet
	if percent > 0 {
		set = newTargetSet(targets, p)
		if err := set.gate(ctx, health, DefaultGateTimeout); err != nil {
			set.closeIdle()
			return err
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.services[name] != svc {
		// Removed (or replaced) while the gate ran: do not attach a set
		// that nothing would ever drain.
		if set != nil {
			set.closeAll()
		}
		return fmt.Errorf("%w: service %q was removed while its canary was gated", ErrNotFound, name)
	}
	old := svc.canary.Swap(set)
	svc.canaryPercent.Store(int32(percent))
	svc.canarySticky.Store(sticky)
	svc.canaryTargets = append([]string(nil), targets...)
	if percent == 0 {
		svc.canaryTargets = nil
	}
	if old != nil {
		p.drain(svc, old, svc.spec.DrainTimeout)
	}
	return p.persist()
}

// Pause puts a service in maintenance (503 with message) or queues its
// requests (up to timeout) until Resume.
func (p *Proxy) Pause(name string, mode PauseMode, message string, timeout time.Duration) error {
	if mode != PauseMaintenance && mode != PauseQueue {
		return fmt.Errorf("%w: pause mode %q: want maintenance or queue", ErrInvalid, mode)
	}
	if timeout <= 0 {
		timeout = DefaultPauseQueueTimeout
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	svc := p.services[name]
	if svc == nil {
		return fmt.Errorf("%w: service %q", ErrNotFound, name)
	}
	svc.pause(&pauseState{mode: mode, message: message, timeout: timeout, resumed: make(chan struct{})})
	return p.persist()
}

// Resume ends a pause; queued requests proceed.
func (p *Proxy) Resume(name string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	svc := p.services[name]
	if svc == nil {
		return fmt.Errorf("%w: service %q", ErrNotFound, name)
	}
	svc.pause(nil)
	return p.persist()
}

// RemoveService stops routing a service; its sets drain.
func (p *Proxy) RemoveService(ctx context.Context, name string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	svc := p.services[name]
	if svc == nil {
		return fmt.Errorf("%w: service %q", ErrNotFound, name)
	}
	delete(p.services, name)
	p.rebuild()
	for _, set := range []*targetSet{svc.active.Load(), svc.canary.Load(), svc.standby.Load()} {
		if set != nil {
			p.drain(svc, set, svc.spec.DrainTimeout)
		}
	}
	return p.persist()
}

// checkConflicts refuses a spec whose host and prefix another service already has.
func (p *Proxy) checkConflicts(spec ServiceSpec) error {
	for name, s := range p.services {
		if name == spec.Name || s.spec.PathPrefix != spec.PathPrefix {
			continue
		}
		for _, h := range hostsOrAny(spec.Hosts) {
			for _, o := range hostsOrAny(s.spec.Hosts) {
				if h == o {
					return fmt.Errorf("%w: host %q and path prefix %q are already routed to service %q", ErrInvalid, h, spec.PathPrefix, name)
				}
			}
		}
	}
	return nil
}

func hostsOrAny(h []string) []string {
	if len(h) == 0 {
		return []string{"*"}
	}
	return h
}

// rebuild publishes a new routing table; callers hold p.mu.
func (p *Proxy) rebuild() {
	t := &table{byHost: map[string][]route{}}
	for _, s := range p.services {
		r := route{prefix: s.spec.PathPrefix, svc: s}
		if len(s.spec.Hosts) == 0 {
			t.any = append(t.any, r)
			continue
		}
		for _, h := range s.spec.Hosts {
			t.byHost[h] = append(t.byHost[h], r)
		}
	}
	byPrefix := func(l []route) {
		sort.Slice(l, func(i, j int) bool { return len(l[i].prefix) > len(l[j].prefix) })
	}
	for _, l := range t.byHost {
		byPrefix(l)
	}
	byPrefix(t.any)
	p.table.Store(t)
}

// drain waits in the background for set's in-flight requests, then closes
// its idle connections; at the drain timeout it closes what is left,
// including WebSocket tunnels (close 1001) and streams.
func (p *Proxy) drain(svc *service, set *targetSet, timeout time.Duration) {
	if !set.startDrain(timeout) {
		return
	}
	p.draining.Add(1)
	go func() {
		defer p.draining.Done()
		set.waitDrained(timeout)
		svc.forgetDrain(set)
		p.log.Info("drained", "service", svc.name, "targets", set.addrs)
	}()
	svc.noteDrain(set)
}
