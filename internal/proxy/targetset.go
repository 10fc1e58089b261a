package proxy

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// latencyBuckets are the upper bounds (seconds) of the latency histogram.
var latencyBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// counters are cumulative per target set and per target.
type counters struct {
	requests   atomic.Uint64
	errors5xx  atomic.Uint64
	connErrors atomic.Uint64
	latency    [14]atomic.Uint64 // len(latencyBuckets)+1; last is +Inf
	latencySum atomic.Uint64     // microseconds
}

func (c *counters) observe(status int, d time.Duration) {
	c.requests.Add(1)
	if status >= 500 {
		c.errors5xx.Add(1)
	}
	s := d.Seconds()
	i := 0
	for i < len(latencyBuckets) && s > latencyBuckets[i] {
		i++
	}
	c.latency[i].Add(1)
	c.latencySum.Add(uint64(d.Microseconds()))
}

// target is one host:port with its connection pool and health.
type target struct {
	addr string
	set  *targetSet

	mu     sync.Mutex
	idle   []*upConn
	all    map[*upConn]struct{}
	closed bool

	healthy      atomic.Bool
	okStreak     atomic.Int32
	failStreak   atomic.Int32
	passiveFails atomic.Int32
	ejectedUntil atomic.Int64 // unix nanos
	stats        counters
}

// upConn is a pooled HTTP/1.1 connection to a target.
type upConn struct {
	net.Conn
	br       *bufio.Reader
	bw       *bufio.Writer
	t        *target
	lastUsed time.Time
	stop     func() bool // ends watch; false when the request's context already closed the conn
	abort    func()      // closes Conn; bound once per connection, so watch does not allocate it
	unpooled bool        // a connection dialled for one upgrade: never pooled
}

// watch closes the connection when ctx is done (the client went away), so
// a blocked read or write on it returns at once. Call unwatch before
// reusing the connection.
func (c *upConn) watch(ctx context.Context) {
	if c.abort == nil {
		c.abort = func() { _ = c.Conn.Close() }
	}
	c.stop = context.AfterFunc(ctx, c.abort)
}

// unwatch stops watching and reports whether the connection is still open
// (the context did not close it), and so may go back to the pool.
func (c *upConn) unwatch() bool {
	if c.stop == nil {
		return true
	}
	ok := c.stop()
	c.stop = nil
	return ok
}

// targetSet is the set of targets a service's requests go to; switching
// replaces the pointer to it atomically.
type targetSet struct {
	addrs   []string
	targets []*target
	p       *Proxy

	rr          atomic.Uint64
	inflight    atomic.Int64
	draining    atomic.Bool
	drained     chan struct{} // closed once, by signalDrained, when in-flight reaches zero while draining
	drainedOnce sync.Once
	drainAt     atomic.Int64 // unix nanos when draining started
	stats       counters

	tunnelMu sync.Mutex
	tunnels  map[*tunnel]struct{}
}

func newTargetSet(addrs []string, p *Proxy) *targetSet {
	s := &targetSet{addrs: append([]string(nil), addrs...), p: p, drained: make(chan struct{}), tunnels: map[*tunnel]struct{}{}}
	for _, a := range addrs {
		t := &target{addr: a, set: s, all: map[*upConn]struct{}{}}
		t.healthy.Store(true) // until an active check says otherwise
		s.targets = append(s.targets, t)
	}
	return s
}

// acquire marks a request in flight on the set.
func (s *targetSet) acquire() { s.inflight.Add(1) }

// release ends a request; the last one out of a draining set signals.
func (s *targetSet) release() {
	if s.inflight.Add(-1) == 0 && s.draining.Load() {
		s.signalDrained()
	}
}

// signalDrained closes drained. The last release and startDrain may both
// see zero in flight; the Once makes the close happen exactly once.
func (s *targetSet) signalDrained() {
	s.drainedOnce.Do(func() { close(s.drained) })
}

// next picks a target round-robin, skipping unhealthy and ejected ones when
// any other is available.
func (s *targetSet) next() *target {
	n := uint64(len(s.targets))
	if n == 1 {
		return s.targets[0]
	}
	start := s.rr.Add(1)
	now := time.Now().UnixNano()
	for i := uint64(0); i < n; i++ {
		t := s.targets[(start+i)%n]
		if t.healthy.Load() && t.ejectedUntil.Load() < now {
			return t
		}
	}
	return s.targets[start%n]
}

// startDrain marks the set draining; it returns false if it already was.
func (s *targetSet) startDrain(timeout time.Duration) bool {
	if !s.draining.CompareAndSwap(false, true) {
		return false
	}
	s.drainAt.Store(time.Now().UnixNano())
	if s.inflight.Load() == 0 {
		s.signalDrained()
	}
	return true
}

// waitDrained waits for in-flight requests up to timeout, then closes
// idle connections, and at the timeout everything still open.
func (s *targetSet) waitDrained(timeout time.Duration) {
	// Idle keep-alive connections carry no request: close them at once so
	// the old colour sees its clients go.
	s.closeIdle()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-s.drained:
		s.closeIdle()
		if s.tunnelCount() == 0 {
			return
		}
		// Requests are done but WebSocket tunnels remain: they run until the timeout.
		<-t.C
	case <-t.C:
	}
	s.closeTunnels()
	s.closeAll()
}

func (s *targetSet) tunnelCount() int {
	s.tunnelMu.Lock()
	defer s.tunnelMu.Unlock()
	return len(s.tunnels)
}

func (s *targetSet) closeIdle() {
	for _, t := range s.targets {
		t.closeIdle()
	}
}

func (s *targetSet) closeAll() {
	s.closeTunnels()
	for _, t := range s.targets {
		t.closeAll()
	}
}

func (s *targetSet) closeTunnels() {
	s.tunnelMu.Lock()
	ts := make([]*tunnel, 0, len(s.tunnels))
	for tn := range s.tunnels {
		ts = append(ts, tn)
	}
	s.tunnelMu.Unlock()
	for _, tn := range ts {
		tn.closeGoingAway()
	}
}

func (s *targetSet) addTunnel(tn *tunnel) {
	s.tunnelMu.Lock()
	s.tunnels[tn] = struct{}{}
	s.tunnelMu.Unlock()
}

func (s *targetSet) removeTunnel(tn *tunnel) {
	s.tunnelMu.Lock()
	delete(s.tunnels, tn)
	s.tunnelMu.Unlock()
}

// gate waits until every target answers its health path, up to timeout.
func (s *targetSet) gate(ctx context.Context, hc HealthCheck, timeout time.Duration) error {
	hc.defaults()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	wait := 5 * time.Millisecond
	pending := append([]*target(nil), s.targets...)
	var lastErr error
	for {
		var still []*target
		for _, t := range pending {
			if err := t.probe(ctx, hc); err != nil {
				lastErr = err
				still = append(still, t)
			}
		}
		if len(still) == 0 {
			return nil
		}
		pending = still
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: target %s did not pass %s within %s: %v (use force to switch anyway)", ErrUnhealthy, pending[0].addr, hc.Path, timeout, lastErr)
		case <-time.After(wait):
		}
		if wait < hc.Interval {
			wait *= 2
		}
	}
}

// getConn returns an idle pooled connection or dials a new one; ctx bounds the dial.
func (t *target) getConn(ctx context.Context, dialTimeout, idleTimeout time.Duration) (*upConn, bool, error) {
	now := time.Now()
	t.mu.Lock()
	for len(t.idle) > 0 {
		c := t.idle[len(t.idle)-1]
		t.idle = t.idle[:len(t.idle)-1]
		if now.Sub(c.lastUsed) > idleTimeout {
			delete(t.all, c)
			t.mu.Unlock()
			c.Conn.Close()
			t.mu.Lock()
			continue
		}
		t.mu.Unlock()
		return c, true, nil
	}
	closed := t.closed
	t.mu.Unlock()
	if closed {
		return nil, false, fmt.Errorf("target %s is closed", t.addr)
	}
	d := net.Dialer{Timeout: dialTimeout}
	nc, err := d.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		return nil, false, err
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	c := &upConn{Conn: nc, br: bufio.NewReaderSize(nc, 16<<10), bw: bufio.NewWriterSize(nc, 8<<10), t: t}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		nc.Close()
		return nil, false, fmt.Errorf("target %s is closed", t.addr)
	}
	t.all[c] = struct{}{}
	t.mu.Unlock()
	return c, false, nil
}

// putConn returns a healthy connection to the pool.
func (t *target) putConn(c *upConn, maxIdle int) {
	c.lastUsed = time.Now()
	t.mu.Lock()
	if c.unpooled || t.closed || len(t.idle) >= maxIdle || t.set.draining.Load() {
		delete(t.all, c)
		t.mu.Unlock()
		c.Conn.Close()
		return
	}
	t.idle = append(t.idle, c)
	t.mu.Unlock()
}

// dropConn closes a connection that cannot be reused.
func (t *target) dropConn(c *upConn) {
	t.mu.Lock()
	delete(t.all, c)
	t.mu.Unlock()
	c.Conn.Close()
}

func (t *target) closeIdle() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	for _, c := range idle {
		delete(t.all, c)
	}
	t.mu.Unlock()
	for _, c := range idle {
		c.Conn.Close()
	}
}

func (t *target) closeAll() {
	t.mu.Lock()
	t.closed = true
	all := make([]*upConn, 0, len(t.all))
	for c := range t.all {
		all = append(all, c)
	}
	t.all = map[*upConn]struct{}{}
	t.idle = nil
	t.mu.Unlock()
	for _, c := range all {
		c.Conn.Close()
	}
}

// healthClient makes active health checks; it never reuses the data plane's pool.
var healthClient = &http.Client{
	Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 2, IdleConnTimeout: 30 * time.Second},
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}

// probe runs one active health check.
func (t *target) probe(ctx context.Context, hc HealthCheck) error {
	ctx, cancel := context.WithTimeout(ctx, hc.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+t.addr+hc.Path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "cutover-proxy-health")
	resp, err := healthClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("GET %s answered %d", hc.Path, resp.StatusCode)
	}
	return nil
}
