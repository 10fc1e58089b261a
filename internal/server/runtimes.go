package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"
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

// runtimes are the drivers a server runs instances with, and the image
// builder of the docker runtime.
type runtimes struct {
	owner    string // the installation's mark on its containers and images
	driver   deploy.Driver
	docker   *docker.Driver // nil: the docker runtime is unavailable
	images   *image.Images
	noDocker string // why, when it is unavailable
}

func (r *runtimes) Close() {
	if c, ok := r.driver.(interface{ Close() }); ok {
		c.Close()
	}
	if r.docker != nil {
		r.docker.Close()
	}
	if r.images != nil {
		_ = r.images.Close()
	}
}

// openRuntimes is the one place that chooses the runtimes: local processes
// always, and Docker when an engine answers. Which one runs an app is its
// manifest's runtime.
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
	r := &runtimes{owner: owner}
	drivers := map[string]deploy.Driver{core.RuntimeProcess: proc}
	if cfg.Docker.Off {
		r.noDocker = "the server was started with --docker=false"
	} else if err := r.openDocker(ctx, cfg.Docker, log); err != nil {
		r.noDocker = err.Error()
		log.Warn("docker runtime unavailable: apps with runtime: docker cannot build or deploy", "err", err)
	} else {
		drivers[core.RuntimeDocker] = r.docker
	}
	unavailable := map[string]string{}
	if r.noDocker != "" {
		unavailable[core.RuntimeDocker] = r.noDocker
	}
	r.driver, err = multi.New(core.RuntimeProcess, drivers, unavailable, log.With("part", "driver"))
	if err != nil {
		proc.Close()
		r.Close()
		return nil, err
	}
	return r, nil
}

func (r *runtimes) openDocker(ctx context.Context, cfg Docker, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, dockerPing)
	defer cancel()
	reg := docker.Registry{Username: cfg.Registry.Username, Password: cfg.Registry.Password}
	if cfg.Registry.Repo != "" {
		reg.ServerAddress, _, _ = strings.Cut(cfg.Registry.Repo, "/")
	}
	d, err := docker.New(ctx, docker.Config{Hosts: cfg.Hosts, Registry: reg, Logger: log.With("part", "docker"), Owner: r.owner})
	if err != nil {
		return err
	}
	buildHost := ""
	if len(cfg.Hosts) > 0 {
		buildHost = cfg.Hosts[0].Address
	}
	im, err := image.New(ctx, image.Config{Host: buildHost, Registry: cfg.Registry, Logger: log.With("part", "image")})
	if err != nil {
		d.Close()
		return err
	}
	r.docker, r.images = d, im
	log.Info("docker runtime", "hosts", strings.Join(d.Hosts(), ","), "engine_api", im.APIVersion(), "registry", cmpOr(cfg.Registry.Repo, "none (images stay on the engines)"))
	return nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// imagePort adapts internal/image (and the docker driver's view of every
// host) to the builder's Images port.
type imagePort struct{ r *runtimes }

func (p imagePort) BuildImage(ctx context.Context, app, sha, dir, dockerfile string, out io.Writer) (string, string, int64, error) {
	b, err := p.r.images.Build(ctx, image.BuildRequest{App: app, SHA: sha, ContextDir: dir, Dockerfile: dockerfile,
		Labels: map[string]string{docker.LabelOwner: p.r.owner}}, out)
	if err != nil {
		return "", "", 0, err
	}
	return b.Ref, b.Digest, b.Size, nil
}

// ImageAvailable: on the build engine or in the registry (image.Exists),
// or on any other Docker host (pulled there earlier).
func (p imagePort) ImageAvailable(ctx context.Context, ref string) error {
	_, err := p.r.images.Exists(ctx, ref)
	if err == nil {
		return nil
	}
	if !errors.Is(err, image.ErrImageGone) {
		return err
	}
	if ok, herr := p.r.docker.HasImage(ctx, ref); herr == nil && ok {
		return nil
	}
	return fmt.Errorf("image %s is gone: on no Docker host (%s) and not in the registry", ref, strings.Join(p.r.docker.Hosts(), ", "))
}

// builderImages returns the builder's Images port, or nil and why not.
func (r *runtimes) builderImages() (build.Images, string) {
	if r.images == nil {
		return nil, r.noDocker
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
	if t.r.images == nil {
		return "", fmt.Errorf("no Docker engine: %s", t.r.noDocker)
	}
	if err := t.r.images.Tag(ctx, a.Ref, tag); err != nil {
		return "", err
	}
	return a.Ref, nil
}
