package proxy

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// PauseMode says what a paused service does with requests.
type PauseMode string

// Pause modes.
const (
	PauseMaintenance PauseMode = "maintenance" // answer 503 with a message
	PauseQueue       PauseMode = "queue"       // hold requests until resumed or the timeout
)

type pauseState struct {
	mode    PauseMode
	message string
	timeout time.Duration
	resumed chan struct{} // closed once, by the service.pause that replaces this state
	queued  atomic.Int64  // requests waiting in queue mode, shown in status
}

// service is one routed service. The hot path reads its atomics; changes
// happen under Proxy.mu.
type service struct {
	name string
	spec ServiceSpec

	active        atomic.Pointer[targetSet]
	standby       atomic.Pointer[targetSet]
	canary        atomic.Pointer[targetSet]
	canaryPercent atomic.Int32
	canarySticky  atomic.Bool
	canaryTargets []string
	paused        atomic.Pointer[pauseState]
	pick          atomic.Uint64 // canary split counter

	drainMu sync.Mutex
	drains  []*targetSet
}

// table is the immutable routing table published atomically; it copies
// what matching needs so the hot path never reads a service's spec.
type table struct {
	byHost map[string][]route
	any    []route
}

type route struct {
	prefix string
	svc    *service
}

// match finds the service for host and path: exact host first, then the
// services that match every host; the longest path prefix wins.
func (t *table) match(host, path string) *service {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if l := t.byHost[strings.ToLower(host)]; l != nil {
		if s := byPrefix(l, path); s != nil {
			return s
		}
	}
	return byPrefix(t.any, path)
}

func byPrefix(l []route, path string) *service {
	for _, r := range l {
		if r.prefix == "" || strings.HasPrefix(path, r.prefix) {
			return r.svc
		}
	}
	return nil
}

func (s *service) setStandby(old *targetSet) { s.standby.Store(old) }

func (s *service) pause(ps *pauseState) {
	if prev := s.paused.Swap(ps); prev != nil {
		close(prev.resumed)
	}
}

func (s *service) noteDrain(set *targetSet) {
	s.drainMu.Lock()
	s.drains = append(s.drains, set)
	s.drainMu.Unlock()
}

func (s *service) forgetDrain(set *targetSet) {
	s.drainMu.Lock()
	defer s.drainMu.Unlock()
	for i, d := range s.drains {
		if d == set {
			s.drains = append(s.drains[:i], s.drains[i+1:]...)
			return
		}
	}
}

func (s *service) closeAll() {
	for _, set := range []*targetSet{s.active.Load(), s.standby.Load(), s.canary.Load()} {
		if set != nil {
			set.closeAll()
		}
	}
	s.drainMu.Lock()
	for _, d := range s.drains {
		d.closeAll()
	}
	s.drainMu.Unlock()
}

func (spec *ServiceSpec) validate() error {
	if spec.Name == "" || len(spec.Name) > 128 {
		return fmt.Errorf("%w: service name %q: want 1-128 characters", ErrInvalid, spec.Name)
	}
	for _, c := range spec.Name {
		if !(c == '-' || c == '_' || c == '.' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
			return fmt.Errorf("%w: service name %q: use letters, digits, '.', '-' or '_'", ErrInvalid, spec.Name)
		}
	}
	if len(spec.Hosts) > MaxHosts {
		return fmt.Errorf("%w: %d hosts, at most %d", ErrInvalid, len(spec.Hosts), MaxHosts)
	}
	for i, h := range spec.Hosts {
		h = strings.ToLower(strings.TrimSpace(h))
		if h == "" || strings.ContainsAny(h, " /:@\t\r\n") || len(h) > 253 {
			return fmt.Errorf("%w: host %q: want a host name without port or path", ErrInvalid, spec.Hosts[i])
		}
		spec.Hosts[i] = h
	}
	if spec.PathPrefix != "" && !strings.HasPrefix(spec.PathPrefix, "/") {
		return fmt.Errorf("%w: path prefix %q must start with /", ErrInvalid, spec.PathPrefix)
	}
	if spec.Health.Path != "" && !strings.HasPrefix(spec.Health.Path, "/") {
		return fmt.Errorf("%w: health path %q must start with /", ErrInvalid, spec.Health.Path)
	}
	if spec.Health.Interval < 0 || spec.Health.Timeout < 0 || spec.DrainTimeout < 0 {
		return fmt.Errorf("%w: durations must not be negative", ErrInvalid)
	}
	return validateTargets(spec.Targets)
}

func validateTargets(targets []string) error {
	if len(targets) == 0 {
		return fmt.Errorf("%w: target: at least one host:port is required", ErrInvalid)
	}
	if len(targets) > MaxTargets {
		return fmt.Errorf("%w: %d targets, at most %d", ErrInvalid, len(targets), MaxTargets)
	}
	seen := map[string]bool{}
	for _, t := range targets {
		host, port, err := net.SplitHostPort(t)
		if err != nil || host == "" {
			return fmt.Errorf("%w: target %q: want host:port", ErrInvalid, t)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%w: target %q: port %q out of range 1-65535", ErrInvalid, t, port)
		}
		if strings.ContainsAny(host, " /@\t\r\n") {
			return fmt.Errorf("%w: target %q: bad host", ErrInvalid, t)
		}
		if seen[t] {
			return fmt.Errorf("%w: target %q listed twice", ErrInvalid, t)
		}
		seen[t] = true
	}
	return nil
}

func sameTargets(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]bool{}
	for _, x := range a {
		m[x] = true
	}
	for _, x := range b {
		if !m[x] {
			return false
		}
	}
	return true
}
