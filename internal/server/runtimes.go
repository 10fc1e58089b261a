package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/cutover/cutover/internal/build"
	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/deploy"
	"github.com/cutover/cutover/internal/driver/docker"
	"github.com/cutover/cutover/internal/driver/multi"
	"github.com/cutover/cutover/internal/driver/process"
	"github.com/cutover/cutover/internal/image"
)

// dockerPing bounds how long the server waits for Docker engines at start.
const dockerPing = 10 * time.Second

// Docker configures the docker runtime (`cutover server --docker-host`,
// `--registry`). The zero value uses the engine at DOCKER_HOST or the
// default socket, when one answers, with no registry.
type Docker struct {
	// Off turns the docker runtime off (--docker=false): apps with
	// runtime: docker are refused with that reason.
	Off bool
	// Hosts are the engines by name (--docker-host NAME=ADDRESS); the
	// first builds the images. None: one host "local".
	Hosts []docker.Host
	// Retry is how often an engine that did not answer is tried again
	// when a docker app needs it (0 = DefaultDockerRetry).
	Retry time.Duration
	// Registry is where images are pushed and pulled from (--registry
	// HOST[:PORT]/PATH); empty keeps images on the engines only, which
	// suits one host.
	Registry image.Registry
}

// ParseDockerHost reads --docker-host NAME=ADDRESS[,publish=IP].
func ParseDockerHost(s string) (docker.Host, error) {
	name, rest, ok := strings.Cut(s, "=")
	if !ok || name == "" || rest == "" {
		return docker.Host{}, fmt.Errorf("--docker-host %q: want NAME=ADDRESS[,publish=IP], e.g. web-1=ssh://deploy@10.0.0.5,publish=10.0.0.5 or local=unix:///var/run/docker.sock", s)
	}
	if err := core.ValidateName("host", name); err != nil {
		return docker.Host{}, fmt.Errorf("--docker-host %q: the name %q: use lower-case letters, digits, '-' or '_'", s, name)
	}
	addr, opts, _ := strings.Cut(rest, ",")
	h := docker.Host{Name: name, Address: addr}
	u, err := url.Parse(addr)
	if err != nil || (u.Scheme != "unix" && u.Scheme != "tcp" && u.Scheme != "ssh") {
		return docker.Host{}, fmt.Errorf("--docker-host %q: address %q: want unix:///PATH, tcp://HOST:PORT or ssh://USER@HOST", s, addr)
	}
	if opts != "" {
		k, v, _ := strings.Cut(opts, "=")
		if k != "publish" || v == "" {
			return docker.Host{}, fmt.Errorf("--docker-host %q: option %q: the only option is publish=IP (the address containers publish their port on)", s, opts)
		}
		h.PublishIP = v
	}
	return h, nil
}

// CheckRegistryRepo checks --registry: HOST[:PORT]/PATH, lower case.
func CheckRegistryRepo(repo string) error {
	if _, err := name.NewRepository(repo + "/app"); err != nil || !strings.Contains(repo, "/") || strings.Contains(repo, "://") {
		return fmt.Errorf("--registry %q: want HOST[:PORT]/PATH without a scheme, lower case, e.g. registry.example.com/team or 127.0.0.1:5000/cutover", repo)
	}
	return nil
}

// DefaultDockerRetry is how often a server whose Docker engine did not
// answer tries again, when a docker app needs it: an engine started after
// the server is found without a restart.
const DefaultDockerRetry = 30 * time.Second

// runtimes are the drivers a server runs instances with, and the image
// builder of the docker runtime.
type runtimes struct {
	owner   string // the installation's mark on its containers and images
	driver  deploy.Driver
	proc    *process.Driver
	cfg     Docker
	log     *slog.Logger
	dataDir string

	mu       sync.Mutex
	docker   *docker.Driver // nil until an engine answered
	images   *image.Images
	noDocker string    // why docker is unavailable (the last attempt's error)
	tried    time.Time // the last attempt
}

func (r *runtimes) Close() {
	r.proc.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.docker != nil {
		r.docker.Close()
		_ = r.images.Close()
	}
}

// openRuntimes is the one place that chooses the runtimes: local processes
// always, and Docker when an engine answers (now, or when a docker app
// needs it later). Which one runs an app is its manifest's runtime.
//
// owner is the installation id (the store's): containers and images carry
// it, so installations (and tests) sharing a Docker engine never take each
// other's containers for orphans.
func openRuntimes(ctx context.Context, cfg Config, owner string, log *slog.Logger) (*runtimes, error) {
	switch cfg.Driver {
	case "", DriverProcess:
	default:
		return nil, fmt.Errorf("--driver %q: want %s (an app's runtime is chosen by its manifest: runtime: docker)", cfg.Driver, DriverProcess)
	}
	proc, err := process.New(process.Config{StateDir: filepath.Join(cfg.DataDir, "instances"), ArtifactRoot: filepath.Join(cfg.DataDir, "artifacts"),
		Logger: log.With("part", "driver")})
	if err != nil {
		return nil, fmt.Errorf("process driver: %w", err)
	}
	r := &runtimes{owner: owner, proc: proc, cfg: cfg.Docker, log: log, dataDir: cfg.DataDir}
	drivers := map[string]deploy.Driver{core.RuntimeProcess: proc}
	unavailable := map[string]string{}
	if cfg.Docker.Off {
		unavailable[core.RuntimeDocker] = "the server was started with --docker=false"
	} else {
		drivers[core.RuntimeDocker] = dockerRuntime{r}
		engines := map[string]bool{}
		for _, h := range cfg.Docker.Hosts {
			engines[h.Address] = true
		}
		if len(engines) > 1 && cfg.Docker.Registry.Repo == "" {
			log.Warn("several Docker engines and no --registry: images are built on the first and the others cannot pull them; give --registry HOST[:PORT]/PATH",
				"hosts", len(cfg.Docker.Hosts))
		}
		if _, _, err := r.dockerParts(ctx); err != nil {
			log.Warn("docker runtime unavailable for now: apps with runtime: docker cannot build or deploy until the engine answers", "err", err)
		}
	}
	if r.driver, err = multi.New(core.RuntimeProcess, drivers, unavailable, log.With("part", "driver")); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// dockerParts returns the docker driver and image builder, connecting
// first when no engine has answered yet (at most every dockerRetry).
func (r *runtimes) dockerParts(ctx context.Context) (*docker.Driver, *image.Images, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.docker != nil {
		return r.docker, r.images, nil
	}
	retry := cmp.Or(r.cfg.Retry, DefaultDockerRetry)
	if r.tried.IsZero() || time.Since(r.tried) >= retry {
		r.tried = time.Now()
		err := r.openDocker(ctx)
		if err == nil {
			return r.docker, r.images, nil
		}
		r.noDocker = err.Error()
	}
	return nil, nil, fmt.Errorf("runtime docker is not available on this server: %s (the server tries again every %s)", r.noDocker, retry)
}

func (r *runtimes) openDocker(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, dockerPing)
	defer cancel()
	cfg := r.cfg
	reg := docker.Registry{Username: cfg.Registry.Username, Password: cfg.Registry.Password}
	if cfg.Registry.Repo != "" {
		reg.ServerAddress, _, _ = strings.Cut(cfg.Registry.Repo, "/")
	}
	d, err := docker.New(ctx, docker.Config{Hosts: cfg.Hosts, Registry: reg, Logger: r.log.With("part", "docker"), Owner: r.owner})
	if err != nil {
		return err
	}
	// Images are built on the first host, through the driver's client.
	tmp := filepath.Join(r.dataDir, "tmp")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		d.Close()
		return err
	}
	im, err := image.New(ctx, image.Config{Client: d.BuildClient(), Registry: cfg.Registry, Logger: r.log.With("part", "image"), TempDir: tmp})
	if err != nil {
		d.Close()
		return err
	}
	r.docker, r.images = d, im
	r.log.Info("docker runtime", "hosts", strings.Join(d.Hosts(), ","), "engine_api", im.APIVersion(), "registry", cmp.Or(cfg.Registry.Repo, "none (images stay on the engines)"))
	return nil
}

// dockerRuntime is the docker driver as the multi driver sees it: it
// connects to the engines on first need, so a server started before its
// Docker engine runs docker apps once the engine answers.
type dockerRuntime struct{ r *runtimes }

func (d dockerRuntime) Start(ctx context.Context, spec core.GroupSpec) ([]core.Instance, error) {
	dr, _, err := d.r.dockerParts(ctx)
	if err != nil {
		return nil, err
	}
	return dr.Start(ctx, spec)
}

func (d dockerRuntime) Stop(ctx context.Context, ins []core.Instance, grace time.Duration) error {
	dr, _, err := d.r.dockerParts(ctx)
	if err != nil {
		return err
	}
	return dr.Stop(ctx, ins, grace)
}

func (d dockerRuntime) List(ctx context.Context) ([]core.Instance, error) {
	dr, _, err := d.r.dockerParts(ctx)
	if err != nil {
		return nil, err
	}
	return dr.List(ctx)
}

func (d dockerRuntime) RunTask(ctx context.Context, spec core.TaskSpec, out io.Writer) error {
	dr, _, err := d.r.dockerParts(ctx)
	if err != nil {
		return err
	}
	return dr.RunTask(ctx, spec, out)
}

func (d dockerRuntime) Logs(ctx context.Context, in core.Instance, maxBytes int64, w io.Writer) error {
	dr, _, err := d.r.dockerParts(ctx)
	if err != nil {
		return err
	}
	return dr.Logs(ctx, in, maxBytes, w)
}

func (d dockerRuntime) Probe(ctx context.Context, in core.Instance, pr core.ProbeRequest) (core.ProbeResult, error) {
	dr, _, err := d.r.dockerParts(ctx)
	if err != nil {
		return core.ProbeResult{}, err
	}
	return dr.Probe(ctx, in, pr)
}

// Exited: nothing is known of an instance on an engine that does not
// answer, so it is not reported exited.
func (d dockerRuntime) Exited(ctx context.Context, in core.Instance) (string, bool) {
	dr, _, err := d.r.dockerParts(ctx)
	if err != nil {
		return "", false
	}
	return dr.Exited(ctx, in)
}

func (d dockerRuntime) Prune(ctx context.Context, app string, keep func(string) bool) (int, error) {
	dr, _, err := d.r.dockerParts(ctx)
	if err != nil {
		return 0, err
	}
	return dr.Prune(ctx, app, keep)
}

// CheckPlacement refuses host names the server does not define, from
// its configuration alone (no engine needs to answer).
func (d dockerRuntime) CheckPlacement(_ context.Context, opts core.RuntimeOptions) error {
	known := []string{docker.DefaultHostName}
	if len(d.r.cfg.Hosts) > 0 {
		known = known[:0]
		for _, h := range d.r.cfg.Hosts {
			known = append(known, h.Name)
		}
	}
	for _, h := range opts.Hosts {
		if !slices.Contains(known, h) {
			return fmt.Errorf("docker host %q is not one of this server's (%s; --docker-host NAME=ADDRESS defines them)", h, strings.Join(known, ", "))
		}
	}
	return nil
}

// imagePort adapts internal/image (and the docker driver's view of every
// host) to the builder's Images port.
type imagePort struct{ r *runtimes }

func (p imagePort) BuildImage(ctx context.Context, app, sha, dir, dockerfile string, out io.Writer) (string, string, int64, error) {
	_, im, err := p.r.dockerParts(ctx)
	if err != nil {
		return "", "", 0, err
	}
	b, err := im.Build(ctx, image.BuildRequest{App: app, SHA: sha, ContextDir: dir, Dockerfile: dockerfile,
		Labels: map[string]string{docker.LabelOwner: p.r.owner}}, out)
	if err != nil {
		return "", "", 0, err
	}
	return b.Ref, b.Digest, b.Size, nil
}

func (p imagePort) CommitImage(ctx context.Context, app, sha string) (string, string, bool, error) {
	_, im, err := p.r.dockerParts(ctx)
	if err != nil {
		return "", "", false, err
	}
	b, ok, err := im.Lookup(ctx, app, sha)
	return b.Ref, b.Digest, ok, err
}

// ImageAvailable: on the build engine or in the registry (image.Exists),
// or on any other Docker host (pulled there earlier).
func (p imagePort) ImageAvailable(ctx context.Context, ref string) error {
	dr, im, err := p.r.dockerParts(ctx)
	if err != nil {
		return err
	}
	_, err = im.Exists(ctx, ref)
	if err == nil {
		return nil
	}
	if !errors.Is(err, image.ErrImageGone) {
		return err
	}
	if ok, herr := dr.HasImage(ctx, ref); herr == nil && ok {
		return nil
	}
	return fmt.Errorf("%w: image %s is gone: on no Docker host (%s) and not in the registry", core.ErrNotFound, ref, strings.Join(dr.Hosts(), ", "))
}

// builderImages returns the builder's Images port, or nil and why not.
func (r *runtimes) builderImages() (build.Images, string) {
	if r.cfg.Off {
		return nil, "the server was started with --docker=false"
	}
	return imagePort{r}, ""
}

// imageTagger adds release tags to images (release.Tagger).
type imageTagger struct {
	r     *runtimes
	store deploy.ArtifactStore
}

func (t imageTagger) TagArtifact(ctx context.Context, app, sha, tag string) (string, error) {
	a, err := t.store.GetArtifact(ctx, app, sha)
	if errors.Is(err, core.ErrNotFound) {
		return "", nil // never built: nothing to tag
	}
	if err != nil {
		return "", err
	}
	if !build.IsImage(a.Ref) {
		return "", nil
	}
	_, im, err := t.r.dockerParts(ctx)
	if err != nil {
		return "", err
	}
	if err := im.Tag(ctx, a.Ref, tag); err != nil {
		return "", err
	}
	return a.Ref, nil
}
