// Package deploy is cutover's deployment state machine: it turns a request
// ("deploy this commit of app to production") into a persisted sequence of
// steps (gates, build, lock, migrate, start the idle colour, health gate,
// smoke checks, switch, verify, live) and owns the lifecycle after it
// (standby scale-in, confirm, automatic revert of a failed colour,
// rollback, waiting deployments).
//
// It reaches storage, runtimes, builds and the proxy only through the
// interfaces in ports.go, so a new runtime or store is a new package that
// implements one of them. It runs no program and opens no file itself.
package deploy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/cutover/cutover/internal/core"
)

// Defaults of the machine itself; per-app knobs live in the manifest.
const (
	DefaultLockTTL       = 10 * time.Minute // renewed at every step
	DefaultTickInterval  = time.Second
	DefaultHistoryLimit  = 50
	MaxHistoryLimit      = 1000
	healthPollFirst      = 5 * time.Millisecond // first re-poll of a starting instance; doubles up to the manifest interval
	verifySampleInterval = 100 * time.Millisecond
	defaultStopGrace     = 10 * time.Second
	routerTimeout        = 30 * time.Second // one call to the proxy; a wedged proxy fails the step, never stalls it
)

// Config wires a Service. Store, Driver, Router, Builder and Source are required.
type Config struct {
	Store   Store
	Driver  Driver
	Router  Router
	Builder Builder
	Source  Source
	Logger  *slog.Logger
	// Now is the clock; tests may replace it.
	Now func() time.Time
	// TickInterval is how often standby scale-in, failed-colour reverts
	// and waiting deployments are checked.
	TickInterval time.Duration
	// Holder names this server in locks (several servers may share a store).
	Holder string
	// Gates decide whether a deployment may enter its environment's queue
	// (the promotion chain is always the first).
	Gates []Gate
	// Governance holds CI results, reviews, approvals, locks and the
	// policy; nil leaves the lock and policy gates out.
	Governance GovernanceStore
	// Users maps commit authors' emails to users (review may not be by an
	// author); nil compares names and emails only.
	Users UserDirectory
	// KeepReleases is how many rollback targets per environment (and
	// newest artifacts per app) the artifact retention keeps; 0 = default.
	KeepReleases int
}

// Service is the deploy machine. All methods are safe for concurrent use.
//
// A Service answers queries at once, but changes environments only while
// active: between Start and Close. A server that does not hold the lease
// keeps its Service inactive, and mutations fail with core.ErrStandby.
type Service struct {
	cfg   Config
	log   *slog.Logger
	gates []Gate

	mu      sync.Mutex
	queues  map[string]*envQueue // app/env -> FIFO worker
	subs    map[chan core.Event]struct{}
	done    map[int64][]chan struct{} // deployment waiters
	act     *activation               // nil when inactive
	standby string                    // why mutations are refused while inactive

	evaluating  map[string]bool      // waiting deployments being evaluated now
	policies    policyCache          // parsed policies, by app
	restarts    map[string]*restarts // supervision of live colours, by app/env
	unrouted    map[string]string    // environments whose live colour the proxy could not be told about, why
	lastCollect time.Time            // when the artifact retention last ran
	// building is held (read) by every build until its artifact is
	// recorded, and (write) by the runtime's prune: an image being built
	// is no artifact yet, and must not be collected as a leftover.
	building sync.RWMutex
	polled   map[string]time.Time // when auto-deploy last polled each app/env

	// amu guards preparing: the deployments of each environment being
	// prepared, by ID; turn is signalled when one leaves it.
	amu       sync.Mutex
	preparing map[string][]int64
	turn      *sync.Cond

	// dmu serialises changes of deployments that are outside a queue
	// (preparing, waiting): admission, cancel and re-evaluation.
	dmu sync.Mutex
}

// activation is one period during which this Service runs environments.
type activation struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New checks cfg and returns an inactive Service.
func New(cfg Config) (*Service, error) {
	switch {
	case cfg.Store == nil:
		return nil, errors.New("deploy: Config.Store is required")
	case cfg.Driver == nil:
		return nil, errors.New("deploy: Config.Driver is required")
	case cfg.Router == nil:
		return nil, errors.New("deploy: Config.Router is required")
	case cfg.Builder == nil:
		return nil, errors.New("deploy: Config.Builder is required")
	case cfg.Source == nil:
		return nil, errors.New("deploy: Config.Source is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.TickInterval <= 0 {
		cfg.TickInterval = DefaultTickInterval
	}
	if cfg.Holder == "" {
		cfg.Holder = "cutover"
	}
	s := &Service{
		cfg:        cfg,
		log:        cfg.Logger,
		queues:     map[string]*envQueue{},
		subs:       map[chan core.Event]struct{}{},
		done:       map[int64][]chan struct{}{},
		standby:    "the server is starting",
		evaluating: map[string]bool{},
		policies:   policyCache{m: map[string]cachedPolicy{}},
		restarts:   map[string]*restarts{},
		unrouted:   map[string]string{},
		polled:     map[string]time.Time{},
		preparing:  map[string][]int64{},
	}
	s.turn = sync.NewCond(&s.amu)
	// A lock refuses first: it is the clearest answer; then the promotion
	// chain, then the gates of other parts (compatibility, policy).
	if cfg.Governance != nil {
		s.gates = append(s.gates, lockGate{cfg.Governance})
	}
	s.gates = append(s.gates, promotionGate{s})
	if cfg.Governance != nil {
		s.gates = append(s.gates, policyGate{s})
	}
	s.gates = append(s.gates, cfg.Gates...)
	return s, nil
}

// Start makes the Service active: it recovers deployments a previous
// server left unfinished, reconciles running instances with the recorded
// state (stopping orphans, re-routing live colours) and starts the
// lifecycle loop. A Service may be started again after Close.
func (s *Service) Start(ctx context.Context) error {
	s.mu.Lock()
	if s.act != nil {
		s.mu.Unlock()
		return errors.New("deploy: already started")
	}
	actx, cancel := context.WithCancel(context.Background())
	a := &activation{ctx: actx, cancel: cancel}
	s.act = a
	s.queues = map[string]*envQueue{}
	s.mu.Unlock()
	if err := s.recover(ctx); err != nil {
		s.Close()
		return fmt.Errorf("recover: %w", err)
	}
	a.wg.Add(1)
	go s.tickLoop(a)
	return nil
}

// Close stops background work (the queues, the tick loop, preparing
// deployments), waiting for running steps to notice. Unfinished
// deployments stay recorded for the next Start, here or on another server.
func (s *Service) Close() {
	s.mu.Lock()
	a := s.act
	s.act = nil
	s.standby = "the server is stopping"
	qs := make([]*envQueue, 0, len(s.queues))
	for _, q := range s.queues {
		qs = append(qs, q)
	}
	s.queues = map[string]*envQueue{}
	s.mu.Unlock()
	if a == nil {
		return
	}
	a.cancel()
	for _, q := range qs {
		q.close()
	}
	a.wg.Wait()
}

// SetStandby records why this Service is inactive (for example, which
// server holds the lease); mutations answer with it.
func (s *Service) SetStandby(reason string) {
	s.mu.Lock()
	s.standby = reason
	s.mu.Unlock()
}

// Standby returns why this Service does not accept changes, or "" when
// it is active.
func (s *Service) Standby() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.act != nil {
		return ""
	}
	return s.standby
}

// Active reports whether this Service runs environments now.
func (s *Service) Active() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.act != nil
}

// activation returns the current activation or ErrStandby.
func (s *Service) activation() (*activation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.act == nil {
		return nil, fmt.Errorf("%w: %s", core.ErrStandby, s.standby)
	}
	return s.act, nil
}

// goActive runs f in a goroutine owned by the current activation.
func (s *Service) goActive(f func(ctx context.Context)) error {
	a, err := s.activation()
	if err != nil {
		return err
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		f(a.ctx)
	}()
	return nil
}

func (s *Service) now() time.Time { return s.cfg.Now().UTC() }

// Subscribe returns a channel receiving every new event until cancel is
// called. Slow subscribers miss events rather than block the machine; they
// catch up from the store with Events(afterID).
func (s *Service) Subscribe() (<-chan core.Event, func()) {
	ch := make(chan core.Event, 256)
	s.mu.Lock()
	s.subs[ch] = struct{}{}
	s.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			s.mu.Lock()
			delete(s.subs, ch)
			s.mu.Unlock()
			close(ch)
		})
	}
}

// Publish records an event of another part (release management, policy)
// in the timeline: it implements Publisher.
func (s *Service) Publish(ctx context.Context, e core.Event) { s.emit(ctx, e) }

// emit appends an event to the timeline and fans it out to subscribers.
func (s *Service) emit(ctx context.Context, e core.Event) {
	e.Time = s.now()
	stored, err := s.cfg.Store.AppendEvent(context.WithoutCancel(ctx), e)
	if err != nil {
		s.log.Error("append event", "app", e.App, "env", e.Env, "type", e.Type, "err", err)
		return // an event that is not in the store is not fanned out: consumers never see what a restart would lose
	}
	s.log.Info(e.Message, "app", e.App, "env", e.Env, "deployment", e.DeploymentID, "type", e.Type, "step", e.Step)
	s.mu.Lock()
	for ch := range s.subs {
		select {
		case ch <- stored:
		default:
		}
	}
	s.mu.Unlock()
}

// event is an event about deployment d, with its structured fields filled.
func event(d core.Deployment, typ core.EventType, msg string) core.Event {
	return core.Event{App: d.App, Env: d.Env, DeploymentID: d.ID, Type: typ, Step: d.Step,
		Release: d.Release, SHA: d.SHA, State: d.State, Reason: d.Reason, Actor: d.RequestedBy, Message: msg}
}

// Wait blocks until deployment id reaches a terminal state or ctx ends, and
// returns the deployment as stored.
func (s *Service) Wait(ctx context.Context, id int64) (core.Deployment, error) {
	ch := make(chan struct{})
	s.mu.Lock()
	s.done[id] = append(s.done[id], ch)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		ws := s.done[id]
		for i, w := range ws {
			if w == ch {
				s.done[id] = append(ws[:i], ws[i+1:]...)
				break
			}
		}
		if len(s.done[id]) == 0 {
			delete(s.done, id)
		}
		s.mu.Unlock()
	}()
	d, err := s.cfg.Store.GetDeployment(ctx, id)
	if err != nil {
		return d, err
	}
	if d.State.Terminal() {
		return d, nil
	}
	select {
	case <-ch:
	case <-ctx.Done():
		return d, ctx.Err()
	}
	return s.cfg.Store.GetDeployment(context.WithoutCancel(ctx), id)
}

func (s *Service) notifyDone(id int64) {
	s.mu.Lock()
	for _, ch := range s.done[id] {
		close(ch)
	}
	delete(s.done, id)
	s.mu.Unlock()
}

// queue returns the worker for app/env, creating it on first use, or
// ErrStandby when the Service is not active.
func (s *Service) queue(app, env string) (*envQueue, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.act == nil {
		return nil, fmt.Errorf("%w: %s", core.ErrStandby, s.standby)
	}
	k := envKey(app, env)
	q := s.queues[k]
	if q == nil {
		q = newEnvQueue(s.act.ctx, &s.act.wg)
		s.queues[k] = q
	}
	return q, nil
}

// serviceName is the proxy service for an app's environment.
func serviceName(app, env string) string { return app + "-" + env }

func envKey(app, env string) string { return app + "/" + env }

func holderOf(d core.Deployment) string { return "deployment " + strconv.FormatInt(d.ID, 10) }
