// Package server wires cutover's control plane together: the store, the
// runtime driver, the builder, the embedded proxies, the deploy machine and
// the HTTP API. It is the only package that knows every concrete type.
package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/net/netutil"

	"github.com/cutover/cutover/internal/api"
	"github.com/cutover/cutover/internal/build"
	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/deploy"
	"github.com/cutover/cutover/internal/gitx"
	"github.com/cutover/cutover/internal/notify"
	"github.com/cutover/cutover/internal/proxy"
	"github.com/cutover/cutover/internal/release"
	"github.com/cutover/cutover/internal/secret"
	"github.com/cutover/cutover/internal/store/postgres"
	"github.com/cutover/cutover/internal/store/sqlite"
	"github.com/cutover/cutover/internal/store/sqlstore"
)

// Defaults of `cutover server`.
const (
	DefaultListen       = "127.0.0.1:7070"
	DefaultDataDir      = ".cutover"
	TokenFile           = "api-token"
	KeyFile             = "secret.key"
	DatabaseFile        = "cutover.db"
	shutdownGracePeriod = 10 * time.Second
	minTokenLen         = 16

	// The API server's bounds (Limits): what one client, with or without
	// a token, can hold. Event streams and long polls stay open as long as
	// each write completes within DefaultWriteTimeout.
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 60 * time.Second
	DefaultWriteTimeout      = 60 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
	DefaultMaxHeaderBytes    = 64 << 10
	DefaultMaxConns          = 512
)

// Config is what `cutover server` needs.
type Config struct {
	DataDir string
	Listen  string // API address; loopback by default
	Logger  *slog.Logger
	// Token overrides the API token (CUTOVER_TOKEN); otherwise one is read
	// from DataDir/api-token or created there on first start.
	Token string
	// TickInterval of the deploy machine's lifecycle loop; 0 = default.
	TickInterval time.Duration
	// DatabaseURL selects PostgreSQL (postgres://...) instead of the SQLite
	// file in DataDir, for several servers sharing one database.
	DatabaseURL string
	// ProxyAdmin, when set, routes traffic through a proxy running as its
	// own process (`cutover proxy run`) at this admin endpoint instead of
	// the embedded proxies; ProxyToken is its token for a TCP endpoint.
	ProxyAdmin string
	ProxyToken string
	// Driver names the runtime that runs instances: "process" (the
	// default) runs them as local child processes.
	Driver string
	// Name identifies this server in the lease and in locks; by default
	// its host name and data dir. A restarted server with the same name
	// takes over from its previous run at once; servers sharing a database
	// need different names (they have different hosts or data dirs).
	Name string
	// LeaseTTL is how long the lease lasts without renewal: the time a
	// standby waits before taking over from a server that died.
	LeaseTTL time.Duration
	// KeepReleases is how many rollback targets per environment keep their
	// artifacts (0 = deploy.DefaultKeepReleases).
	KeepReleases int
	// Limits bound the API server's connections; zero fields take the
	// defaults.
	Limits Limits
	// AllowPrivateNotify lets notifications reach loopback, link-local and
	// private addresses (--allow-private-notify); refused by default (SSRF).
	AllowPrivateNotify bool
	// Docker configures the docker runtime: hosts and registry.
	Docker Docker
	// SMTP is the relay of email notifications (--smtp-addr); nil refuses
	// email subscriptions.
	SMTP *notify.SMTP
	// NotifyRetryFor is how long a failing notification is retried (0 =
	// notify.DefaultRetryFor).
	NotifyRetryFor time.Duration
}

// Limits bound what one client can hold of the API server.
type Limits struct {
	ReadHeaderTimeout time.Duration // to send the request line and headers
	ReadTimeout       time.Duration // to send the whole request, body included
	// WriteTimeout bounds each write of an answer, not the whole answer:
	// an event stream or a long poll lasts as long as it needs, but a
	// client that stops reading is cut off.
	WriteTimeout   time.Duration
	IdleTimeout    time.Duration // between requests on a kept-alive connection
	MaxHeaderBytes int
	MaxConns       int // connections served at once; more wait to be accepted
}

func (l Limits) withDefaults() Limits {
	set := func(d *time.Duration, def time.Duration) {
		if *d <= 0 {
			*d = def
		}
	}
	set(&l.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	set(&l.ReadTimeout, DefaultReadTimeout)
	set(&l.WriteTimeout, DefaultWriteTimeout)
	set(&l.IdleTimeout, DefaultIdleTimeout)
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if l.MaxConns <= 0 {
		l.MaxConns = DefaultMaxConns
	}
	return l
}

// Server is a running control plane.
type Server struct {
	Deploy  *deploy.Service
	Release *release.Service
	Token   string
	// NewToken is set when the token was created by this start (print it once).
	NewToken bool

	cfg      Config
	ln       net.Listener
	http     *http.Server
	router   *Router // embedded proxies; nil with a remote proxy
	store    *sqlstore.Store
	driver   deploy.Driver
	runtimes *runtimes
	log      *slog.Logger
	notify   *notify.Notifier
	// stopNotify stops the notifier's goroutine, which runs only while
	// this server is active.
	stopNotify func()

	name      string
	stopLease context.CancelFunc
	leaseDone chan struct{}
	lease     core.Lease // held while Deploy is active; guarded by the lease loop
}

// Open builds every part, recovers unfinished deployments and starts
// serving the API on cfg.Listen.
func Open(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.DataDir == "" {
		cfg.DataDir = DefaultDataDir
	}
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	log := cfg.Logger
	if cfg.SMTP != nil {
		if err := cfg.SMTP.Check(); err != nil {
			return nil, err
		}
	}
	// Every path kept is under the data dir: made absolute once here, a
	// server started from another directory finds the same files.
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("data dir %s: %w", cfg.DataDir, err)
	}
	cfg.DataDir = dataDir
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir %s: %w", cfg.DataDir, err)
	}
	token, created, err := loadOrCreateToken(filepath.Join(cfg.DataDir, TokenFile), cfg.Token)
	if err != nil {
		return nil, err
	}
	box, err := secret.LoadOrCreateKey(filepath.Join(cfg.DataDir, KeyFile))
	if err != nil {
		return nil, err
	}
	var st *sqlstore.Store
	switch {
	case cfg.DatabaseURL == "":
		st, err = sqlite.Open(ctx, filepath.Join(cfg.DataDir, DatabaseFile), box)
	case strings.HasPrefix(cfg.DatabaseURL, "postgres://"), strings.HasPrefix(cfg.DatabaseURL, "postgresql://"):
		st, err = postgres.Open(ctx, cfg.DatabaseURL, box)
	default:
		err = fmt.Errorf("--database: want a postgres:// URL (SQLite is the default, in the data dir)")
	}
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	s := &Server{Token: token, NewToken: created, cfg: cfg, store: st, log: log}
	ok := false
	defer func() {
		if !ok {
			s.closeParts()
		}
	}()
	// The server's own token belongs to the built-in admin.
	if err := st.EnsureUser(ctx, core.User{Name: core.AdminUser, CreatedAt: time.Now().UTC(),
		Bindings: []core.RoleBinding{{Role: core.RoleAdmin, Apps: core.AnyScope, Envs: core.AnyScope}}}); err != nil {
		return nil, fmt.Errorf("create the %s user: %w", core.AdminUser, err)
	}
	installation, err := st.Installation(ctx)
	if err != nil {
		return nil, err
	}
	if s.runtimes, err = openRuntimes(ctx, cfg, installation, log); err != nil {
		return nil, err
	}
	s.driver = s.runtimes.driver
	var router deploy.Router
	if cfg.ProxyAdmin != "" {
		if router, err = NewRemoteRouter(cfg.ProxyAdmin, cfg.ProxyToken); err != nil {
			return nil, fmt.Errorf("proxy admin: %w", err)
		}
	} else {
		s.router = NewRouter(filepath.Join(cfg.DataDir, "proxy"), log.With("part", "proxy"))
		router = s.router
	}
	mirrors := &gitx.Mirrors{Dir: filepath.Join(cfg.DataDir, "mirrors")}
	builder := &build.Builder{Root: filepath.Join(cfg.DataDir, "artifacts"), Logger: log.With("part", "build"), Repos: mirrors}
	builder.Images, builder.NoImages = s.runtimes.builderImages()
	s.ln, err = net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	s.name = cfg.Name
	if s.name == "" {
		// The same host and data dir is the same server: restarted, it takes
		// over from its previous run at once, whatever port it listens on.
		host, _ := os.Hostname()
		s.name = host + ":" + cfg.DataDir
	}
	// Until this server holds the lease, nothing it writes to deployments,
	// state, events or locks counts.
	st.SetFence(&core.Lease{Name: LeaseName, Owner: s.name, Generation: 0})
	publisher := &publisher{}
	s.Release = release.New(release.Config{
		Store: st, DataDir: filepath.Join(cfg.DataDir, "repos"), Logger: log.With("part", "release"), Publisher: publisher,
		Tagger: imageTagger{s.runtimes, st},
	})
	s.Deploy, err = deploy.New(deploy.Config{
		Store: st, Driver: s.driver, Router: router, Builder: builder, Source: gitSource{mirrors},
		Logger: log.With("part", "deploy"), TickInterval: cfg.TickInterval, Gates: []deploy.Gate{compatGate{s.Release}},
		Holder: s.name, KeepReleases: cfg.KeepReleases, Governance: st, Users: st,
	})
	if err != nil {
		return nil, err
	}
	publisher.to = s.Deploy
	s.notify = notify.New(notify.Config{Store: st, AllowPrivate: cfg.AllowPrivateNotify, SMTP: cfg.SMTP, Logger: log.With("part", "notify")})
	if err := s.startLease(ctx); err != nil {
		return nil, err
	}
	lim := cfg.Limits.withDefaults()
	s.http = &http.Server{
		Handler:           perWriteDeadline(api.New(api.Config{Service: s.Deploy, Release: s.Release, Token: token, Users: st, Hooks: st, OnPush: s.onPush, Notify: s.notify, Logger: log.With("part", "api")}), lim.WriteTimeout),
		ReadHeaderTimeout: lim.ReadHeaderTimeout,
		ReadTimeout:       lim.ReadTimeout,
		IdleTimeout:       lim.IdleTimeout,
		MaxHeaderBytes:    lim.MaxHeaderBytes,
		// No WriteTimeout for the whole answer: event streams and long
		// polls (/wait) last minutes. perWriteDeadline bounds each write.
	}
	go func() {
		if err := s.http.Serve(netutil.LimitListener(s.ln, lim.MaxConns)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("api server", "err", err)
		}
	}()
	ok = true
	log.Info("cutover server listening", "api", s.URL(), "data", cfg.DataDir)
	return s, nil
}

// perWriteDeadline gives every write of an answer d to complete, renewed
// before each write and flush, so a long-lived answer stays open while a
// client that stops reading is cut off.
func perWriteDeadline(h http.Handler, d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dw := &deadlineWriter{ResponseWriter: w, rc: http.NewResponseController(w), d: d}
		dw.renew()
		h.ServeHTTP(dw, r)
	})
}

// deadlineWriter renews the connection's write deadline before each write.
type deadlineWriter struct {
	http.ResponseWriter
	rc    *http.ResponseController
	d     time.Duration
	until time.Time
}

func (w *deadlineWriter) renew() {
	// Renewing costs a timer update: skip it while most of d is left.
	if now := time.Now(); w.until.Sub(now) < w.d/2 {
		w.until = now.Add(w.d)
		_ = w.rc.SetWriteDeadline(w.until)
	}
}

func (w *deadlineWriter) Write(p []byte) (int, error) {
	w.renew()
	return w.ResponseWriter.Write(p)
}

// Flush implements http.Flusher, which the event stream asserts.
func (w *deadlineWriter) Flush() {
	w.renew()
	_ = w.rc.Flush()
}

// Unwrap lets http.ResponseController reach the connection.
func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// URL is the API's base URL.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() }

// DataDir is the absolute data directory the server keeps its state in.
func (s *Server) DataDir() string { return s.cfg.DataDir }

// Close stops the API, the deploy machine and the proxies. Instances keep
// running: a restarted server adopts them.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGracePeriod)
	defer cancel()
	if s.http != nil {
		_ = s.http.Shutdown(ctx)
	}
	s.closeParts()
	return nil
}

func (s *Server) closeParts() {
	s.stopLeaseLoop()
	s.stopNotifier()
	if s.Deploy != nil {
		s.Deploy.Close()
	}
	s.releaseLease()
	if s.router != nil {
		s.router.Close()
	}
	if s.runtimes != nil {
		s.runtimes.Close()
	}
	if s.store != nil {
		s.store.Close()
	}
}

// Instances lists every instance the server's runtimes run (of this
// server's installation).
func (s *Server) Instances(ctx context.Context) ([]core.Instance, error) { return s.driver.List(ctx) }

// Installation is the mark this server's Docker containers and images
// carry (label cutover.owner): what a cleanup of them filters on.
func (s *Server) Installation() string { return s.runtimes.owner }

// StopAll stops the deploy machine, so nothing restarts or replaces what
// it stops, then every instance the server's runtimes run (the demo and
// the tests use it to leave nothing behind). The server is for closing
// after it.
func (s *Server) StopAll(ctx context.Context) error {
	if s.Deploy != nil {
		s.Deploy.Close()
	}
	insts, err := s.driver.List(ctx)
	if err != nil {
		return err
	}
	return s.driver.Stop(ctx, insts, 5*time.Second)
}

// RemoveRuntimeLeftovers removes everything the docker runtime holds of
// app: it stops the app's instances still running, then removes this
// installation's containers of the app, on every host, and its images of
// the app (labelled cutover.app and cutover.owner), as a retention that
// keeps nothing. Other installations' are left alone. Stop the deploy
// machine first (Deploy.Close): it replaces live instances that exit.
// It returns how many containers and images it removed, and an error
// naming what the engines still hold of the app afterwards; with no
// docker runtime there is nothing to remove.
func (s *Server) RemoveRuntimeLeftovers(ctx context.Context, app string) (int, error) {
	if s.runtimes == nil || s.runtimes.docker == nil {
		return 0, nil
	}
	insts, err := s.runtimes.docker.List(ctx)
	if err != nil {
		return 0, err
	}
	var running []core.Instance
	for _, in := range insts {
		if in.App == app {
			running = append(running, in)
		}
	}
	if err := s.runtimes.docker.Stop(ctx, running, 5*time.Second); err != nil {
		return 0, err
	}
	n, err := s.runtimes.docker.Prune(ctx, app, func(string) bool { return false })
	if err != nil {
		return n, err
	}
	left, err := s.runtimes.docker.Leftovers(ctx, app)
	if err != nil {
		return n, err
	}
	if len(left) > 0 {
		return n, fmt.Errorf("still on the Docker engines after removing %d containers and images of %s: %s", n, app, strings.Join(left, "; "))
	}
	return n, nil
}

// loadOrCreateToken returns the API token: the override, the one in path,
// or a new random one written to path with mode 0600.
func loadOrCreateToken(path, override string) (token string, created bool, err error) {
	if override != "" {
		if len(override) < minTokenLen {
			return "", false, fmt.Errorf("CUTOVER_TOKEN: at least %d characters are required", minTokenLen)
		}
		return override, false, nil
	}
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		fi, err := os.Stat(path)
		if err != nil {
			return "", false, err
		}
		if fi.Mode().Perm()&0o077 != 0 {
			return "", false, fmt.Errorf("token file %s has mode %v: want 0600", path, fi.Mode().Perm())
		}
		t := strings.TrimSpace(string(b))
		if len(t) < minTokenLen {
			return "", false, fmt.Errorf("token file %s holds %d characters, at least %d are required: delete the file to have a new token created, or set CUTOVER_TOKEN",
				path, len(t), minTokenLen)
		}
		return t, false, nil
	case errors.Is(err, fs.ErrNotExist):
		raw := make([]byte, 24)
		if _, err := rand.Read(raw); err != nil {
			return "", false, err
		}
		t := hex.EncodeToString(raw)
		// Atomic: a crash never leaves an empty or partial token file.
		if err := proxy.WriteFileAtomic(path, []byte(t+"\n"), 0o600); err != nil {
			return "", false, fmt.Errorf("write token file: %w", err)
		}
		return t, true, nil
	default:
		return "", false, fmt.Errorf("read token file: %w", err)
	}
}

// gitSource adapts gitx to deploy.Source; a remote repository is read
// through its mirror in the data dir.
type gitSource struct{ mirrors *gitx.Mirrors }

func (g gitSource) ResolveCommit(ctx context.Context, repo, ref string) (string, error) {
	path, err := g.mirrors.Fetched(ctx, repo) // a branch or HEAD: the latest commits
	if err != nil {
		return "", err
	}
	return gitx.ResolveCommit(ctx, path, ref)
}

func (g gitSource) Log(ctx context.Context, repo, from, to string) ([]core.Commit, error) {
	path, err := g.mirrors.Path(ctx, repo)
	if err != nil {
		return nil, err
	}
	return gitx.Log(ctx, path, from, to)
}

func (g gitSource) ReadFile(ctx context.Context, repo, sha, path string) ([]byte, error) {
	dir, err := g.mirrors.Path(ctx, repo)
	if err != nil {
		return nil, err
	}
	return gitx.ShowFile(ctx, dir, sha, path)
}

// publisher hands release management's events to the deploy machine's
// timeline, which exists only after release management is built.
type publisher struct{ to *deploy.Service }

func (p *publisher) Publish(ctx context.Context, e core.Event) {
	if p.to != nil {
		p.to.Publish(ctx, e)
	}
}

// Drivers cutover can run instances with (Config.Driver).
const (
	DriverProcess = "process"
)

// onPush hands a push received by webhook to continuous delivery, in the
// background: the webhook is answered at once.
func (s *Server) onPush(ctx context.Context, app, branch, sha string) {
	go func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if _, err := s.Deploy.AutoDeploy(ctx, app, branch, sha); err != nil {
			s.log.Error("auto-deploy of a push", "app", app, "branch", branch, "sha", sha, "err", err)
		}
	}()
}
