package proxy

import (
	"fmt"
	"sort"
	"time"
)

// Counters are cumulative request counters.
type Counters struct {
	Requests   uint64 `json:"requests"`
	Errors5xx  uint64 `json:"errors_5xx"`
	ConnErrors uint64 `json:"conn_errors"`
}

// TargetStatus is one target of a set.
type TargetStatus struct {
	Addr     string `json:"addr"`
	Healthy  bool   `json:"healthy"`
	Ejected  bool   `json:"ejected"`
	Counters        // cumulative, this target
}

// SetStatus is a target set.
type SetStatus struct {
	Targets  []TargetStatus `json:"targets"`
	InFlight int64          `json:"in_flight"`
	Counters                // cumulative, this set
}

// DrainStatus is a set still draining after a switch.
type DrainStatus struct {
	Targets  []string  `json:"targets"`
	InFlight int64     `json:"in_flight"`
	Tunnels  int       `json:"tunnels"`
	Since    time.Time `json:"since"`
}

// ServiceStatus is what `cutover proxy status` shows.
type ServiceStatus struct {
	Name          string        `json:"name"`
	Hosts         []string      `json:"hosts,omitempty"`
	PathPrefix    string        `json:"path_prefix,omitempty"`
	Active        SetStatus     `json:"active"`
	Standby       *SetStatus    `json:"standby,omitempty"`
	Canary        *SetStatus    `json:"canary,omitempty"`
	CanaryPercent int           `json:"canary_percent,omitempty"`
	Paused        string        `json:"paused,omitempty"`
	Queued        int64         `json:"queued,omitempty"` // requests held by a queue pause
	Draining      []DrainStatus `json:"draining,omitempty"`
	Health        HealthCheck   `json:"health"`
}

// ServiceStats are the counters the control plane reads for verification.
type ServiceStats struct {
	Counters
	Targets []TargetStatus `json:"targets"`
}

func (c *counters) snapshot() Counters {
	return Counters{Requests: c.requests.Load(), Errors5xx: c.errors5xx.Load(), ConnErrors: c.connErrors.Load()}
}

func (s *targetSet) status() SetStatus {
	st := SetStatus{InFlight: s.inflight.Load(), Counters: s.stats.snapshot()}
	now := time.Now().UnixNano()
	for _, t := range s.targets {
		st.Targets = append(st.Targets, TargetStatus{Addr: t.addr, Healthy: t.healthy.Load(), Ejected: t.ejectedUntil.Load() > now, Counters: t.stats.snapshot()})
	}
	return st
}

// Stats returns the cumulative counters of a service's active set.
func (p *Proxy) Stats(name string) (ServiceStats, error) {
	p.mu.Lock()
	svc := p.services[name]
	p.mu.Unlock()
	if svc == nil {
		return ServiceStats{}, fmt.Errorf("%w: service %q", ErrNotFound, name)
	}
	st := svc.active.Load().status()
	return ServiceStats{Counters: st.Counters, Targets: st.Targets}, nil
}

// StatusOf returns one service's status.
func (p *Proxy) StatusOf(name string) (ServiceStatus, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	svc := p.services[name]
	if svc == nil {
		return ServiceStatus{}, fmt.Errorf("%w: service %q", ErrNotFound, name)
	}
	return svc.status(), nil
}

// Status returns every service, sorted by name.
func (p *Proxy) Status() []ServiceStatus {
	p.mu.Lock()
	out := make([]ServiceStatus, 0, len(p.services))
	for _, s := range p.services {
		out = append(out, s.status())
	}
	p.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (s *service) status() ServiceStatus {
	st := ServiceStatus{Name: s.name, Hosts: s.spec.Hosts, PathPrefix: s.spec.PathPrefix, Active: s.active.Load().status(), Health: s.spec.Health}
	if sb := s.standby.Load(); sb != nil {
		x := sb.status()
		st.Standby = &x
	}
	if c := s.canary.Load(); c != nil {
		x := c.status()
		st.Canary = &x
		st.CanaryPercent = int(s.canaryPercent.Load())
	}
	if ps := s.paused.Load(); ps != nil {
		st.Paused = string(ps.mode)
		st.Queued = ps.queued.Load()
	}
	s.drainMu.Lock()
	for _, d := range s.drains {
		st.Draining = append(st.Draining, DrainStatus{Targets: d.addrs, InFlight: d.inflight.Load(), Tunnels: d.tunnelCount(), Since: time.Unix(0, d.drainAt.Load()).UTC()})
	}
	s.drainMu.Unlock()
	return st
}
