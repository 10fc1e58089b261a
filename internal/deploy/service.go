// Package deploy is cutover's deployment state machine: it turns a request
// ("deploy this commit of app to production") into a persisted sequence of
// steps (lock, migrate, start the idle colour, health gate, smoke checks,
// switch, verify, live) and owns the lifecycle after it (standby scale-in,
// confirm, automatic revert of a failed colour, rollback).
//
// It reaches storage, runtimes, builds and the proxy only through the
// interfaces in ports.go, so a new runtime or store is a new package that
// implements one of them.
package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/manifest"
)

// Defaults of the machine itself; per-app knobs live in the manifest.
const (
	DefaultLockTTL       = time.Hour
	DefaultTickInterval  = time.Second
	DefaultHistoryLimit  = 50
	MaxHistoryLimit      = 1000
	healthPollFirst      = 5 * time.Millisecond // first re-poll of a starting instance; doubles up to the manifest interval
	verifySampleInterval = 100 * time.Millisecond
)

// Builder turns a commit into an artifact (internal/build).
type Builder interface {
	// Build builds sha once; a second call returns the stored artifact.
	Build(ctx context.Context, app core.App, sha string, logw io.Writer) (core.Artifact, *manifest.Manifest, error)
}

// Source answers questions about an app's repository (internal/gitx).
type Source interface {
	ResolveCommit(ctx context.Context, repo, ref string) (string, error)
}

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
	// TickInterval is how often standby scale-in and failed-colour reverts
	// are checked.
	TickInterval time.Duration
	// HTTPClient makes health and smoke requests; a default with no proxy
	// and short timeouts is used when nil.
	HTTPClient *http.Client
	// Holder names this server in locks (several servers may share a store).
	Holder string
	// Gates run before a commit is promoted to the next environment.
	Gates []Gate
}

// Service is the deploy machine. All methods are safe for concurrent use.
type Service struct {
	cfg    Config
	log    *slog.Logger
	client *http.Client

	mu     sync.Mutex
	queues map[string]*envQueue // app/env -> FIFO worker
	subs   map[chan core.Event]struct{}
	done   map[int64][]chan struct{} // deployment waiters

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New checks cfg and returns a Service. Call Start to recover unfinished
// work and begin the background lifecycle loop.
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
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{
			Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second},
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Service{
		cfg:    cfg,
		log:    cfg.Logger,
		client: client,
		queues: map[string]*envQueue{},
		subs:   map[chan core.Event]struct{}{},
		done:   map[int64][]chan struct{}{},
		ctx:    ctx,
		cancel: cancel,
	}, nil
}

// Start recovers deployments a previous server left unfinished, reconciles
// running instances with the recorded state (stopping orphans, re-routing
// live colours) and starts the lifecycle loop.
func (s *Service) Start(ctx context.Context) error {
	if err := s.recover(ctx); err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	s.wg.Add(1)
	go s.tickLoop()
	return nil
}

// Close stops background work, waiting for running steps to notice.
func (s *Service) Close() {
	s.cancel()
	s.mu.Lock()
	qs := make([]*envQueue, 0, len(s.queues))
	for _, q := range s.queues {
		qs = append(qs, q)
	}
	s.mu.Unlock()
	for _, q := range qs {
		q.close()
	}
	s.wg.Wait()
}

func (s *Service) now() time.Time { return s.cfg.Now().UTC() }

// Subscribe returns a channel receiving every new event until cancel is
// called. Slow subscribers miss events rather than block the machine; they
// can catch up with Events(afterID).
func (s *Service) Subscribe() (<-chan core.Event, func()) {
	ch := make(chan core.Event, 256)
	s.mu.Lock()
	s.subs[ch] = struct{}{}
	s.mu.Unlock()
	return ch, func() {
		s.mu.Lock()
		if _, ok := s.subs[ch]; ok {
			delete(s.subs, ch)
			close(ch)
		}
		s.mu.Unlock()
	}
}

// Emit records an event of another part (release management) in the timeline.
func (s *Service) Emit(ctx context.Context, e core.Event) { s.emit(ctx, e) }

// emit appends an event to the timeline and fans it out to subscribers.
func (s *Service) emit(ctx context.Context, e core.Event) {
	e.Time = s.now()
	stored, err := s.cfg.Store.AppendEvent(context.WithoutCancel(ctx), e)
	if err != nil {
		s.log.Error("append event", "app", e.App, "env", e.Env, "type", e.Type, "err", err)
		stored = e
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

// serviceName is the proxy service for an app's environment.
func serviceName(app, env string) string { return app + "-" + env }

func envKey(app, env string) string { return app + "/" + env }
