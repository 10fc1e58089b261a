// Package image builds an app's container image through the Docker Engine
// API and keeps it in an OCI distribution registry under tags that never
// move: REPO/APP:SHA for a commit, release tags (rc-112, v2.4.5) added to
// an existing digest, and REPO/APP:latest only as a build cache. Deploys
// use the reference by digest (REPO/APP@sha256:...) that Build returns.
//
// The engine builds (legacy builder, API negotiated down to what it
// speaks); the registry side is go-containerregistry: the built image is
// read back from the engine (ImageSave) and written with remote.Write, so
// its manifest digest is known before anything is pushed and an existing
// tag that names another image is refused without writing a byte.
package image

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/moby/moby/client"

	"github.com/cutover/cutover/internal/core"
)

// Defaults, in one place.
const (
	// LocalRepo names images when no registry is configured: cutover/APP:SHA.
	LocalRepo = "cutover"
	// DefaultDockerfile is the Dockerfile's path inside the build context.
	DefaultDockerfile = "Dockerfile"
	// CacheTag is pushed beside the SHA tag as a build cache; deploys never use it.
	CacheTag = "latest"
	// DefaultMaxContextBytes bounds the build context sent to the engine.
	DefaultMaxContextBytes = 1 << 30
	// DefaultMaxOutputBytes bounds the build output streamed to the caller.
	DefaultMaxOutputBytes = 16 << 20
	// pingTimeout bounds New's check that the engine answers.
	pingTimeout = 10 * time.Second
)

// Labels every image built by cutover carries.
const (
	LabelApp    = "cutover.app"
	LabelCommit = "cutover.commit" // the full SHA
	LabelBuilt  = "cutover.built"  // RFC 3339, UTC
)

var (
	// ErrTagExists says a tag already names a different image in the
	// registry: tags are immutable, so nothing was pushed or moved.
	ErrTagExists = errors.New("tag already exists with another image")
	// ErrImageGone says an image is neither in the local engine nor in
	// the registry.
	ErrImageGone = errors.New("image gone")
)

// TagExistsError is the ErrTagExists a caller can read the digests from.
type TagExistsError struct {
	Tag      string // REPO/APP:TAG
	Existing string // what the tag names in the registry (manifest digest)
	New      string // what would have replaced it
}

func (e *TagExistsError) Error() string {
	return fmt.Sprintf("%s already names %s, refusing %s: tags are immutable", e.Tag, e.Existing, e.New)
}

// Unwrap makes errors.Is(err, ErrTagExists) hold.
func (e *TagExistsError) Unwrap() error { return ErrTagExists }

// Registry is a distribution registry; an empty Repo means none (images
// stay in the local engine).
type Registry struct {
	// Repo is where images go: Repo/APP, e.g. "127.0.0.1:5000/cutover".
	Repo string
	// Username and Password come from the server's secret config; the
	// password is never logged nor put in an error.
	Username, Password string
	// Insecure speaks plain HTTP (loopback addresses always may).
	Insecure bool
}

// String prints the registry without its password.
func (r Registry) String() string {
	if r.Repo == "" {
		return "(no registry)"
	}
	if r.Username != "" {
		return r.Repo + " (as " + r.Username + ")"
	}
	return r.Repo
}

// Config configures Images.
type Config struct {
	// Host is the engine's address, DOCKER_HOST style
	// ("unix:///var/run/docker.sock", "tcp://host:2375"); "" reads
	// DOCKER_HOST and falls back to the default socket.
	Host string
	// Client, when set, is the engine's client, shared with its owner
	// (the docker driver's, so ssh:// and TLS hosts work the same way);
	// Host is then ignored and Close leaves the client open.
	Client   *client.Client
	Registry Registry
	Logger   *slog.Logger
	// MaxContextBytes bounds the build context (0 = DefaultMaxContextBytes).
	MaxContextBytes int64
	// TempDir holds an image read out of the engine while it is pushed
	// ("" = the system's, often a RAM-backed tmpfs: give a disk).
	TempDir string
}

// Images builds, pushes, tags and removes images of apps.
type Images struct {
	cli    *client.Client
	shared bool // cli belongs to the caller
	tmp    string
	reg    Registry
	log    *slog.Logger
	host   string
	maxCtx int64
}

// BuildRequest is one commit of one app to build.
type BuildRequest struct {
	App, SHA string
	// ContextDir is the build context (an exported commit).
	ContextDir string
	// Dockerfile is relative to ContextDir ("" = DefaultDockerfile) and
	// must be inside it.
	Dockerfile string
	// Labels are added to the image beside cutover's own.
	Labels map[string]string
}

// Built is the result of a build.
type Built struct {
	// Ref is what deploys run: REPO/APP@sha256:<manifest digest> with a
	// registry, the image ID (sha256:...) without one.
	Ref string
	// Digest is the manifest digest with a registry, the image ID without.
	Digest string
	// ImageID is the engine's ID (the config digest).
	ImageID string
	// Size is the image's size in the engine, in bytes.
	Size int64
	// Pushed says this call wrote the SHA tag (false: no registry, or the
	// registry already had this very image under it).
	Pushed bool
}

// New connects to the engine and checks that it answers, negotiating the
// API version.
func New(ctx context.Context, cfg Config) (*Images, error) {
	cli := cfg.Client
	if cli == nil {
		opts := []client.Opt{client.FromEnv}
		if cfg.Host != "" {
			opts = append(opts, client.WithHost(cfg.Host))
		}
		var err error
		if cli, err = client.New(opts...); err != nil {
			return nil, fmt.Errorf("docker engine %q: %w", cfg.Host, err)
		}
	}
	closeCli := func() {
		if cfg.Client == nil {
			_ = cli.Close()
		}
	}
	host := cli.DaemonHost()
	pctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	if _, err := cli.Ping(pctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		closeCli()
		return nil, fmt.Errorf("docker engine at %s does not answer: %w", host, err)
	}
	reg := cfg.Registry
	reg.Repo = strings.TrimSuffix(reg.Repo, "/")
	if reg.Repo != "" {
		if _, err := name.NewRepository(reg.Repo+"/app", reg.nameOpts()...); err != nil {
			closeCli()
			return nil, fmt.Errorf("%w: registry repository %q: %v", core.ErrInvalid, reg.Repo, err)
		}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	maxCtx := cfg.MaxContextBytes
	if maxCtx <= 0 {
		maxCtx = DefaultMaxContextBytes
	}
	return &Images{cli: cli, shared: cfg.Client != nil, tmp: cfg.TempDir, reg: reg, log: log, host: host, maxCtx: maxCtx}, nil
}

// Close releases the engine connection.
func (im *Images) Close() error {
	if im.shared {
		return nil
	}
	return im.cli.Close()
}

// Host is the engine's address.
func (im *Images) Host() string { return im.host }

// APIVersion is the engine API version negotiated.
func (im *Images) APIVersion() string { return im.cli.ClientVersion() }

// Engine returns the engine client (tests and the Docker driver share it).
func (im *Images) Engine() *client.Client { return im.cli }

// Repository returns where app's images go: REPO/APP, or cutover/APP
// without a registry.
func (im *Images) Repository(app string) string {
	if im.reg.Repo == "" {
		return LocalRepo + "/" + app
	}
	return im.reg.Repo + "/" + app
}

// Remove deletes the local copy of ref (retention): its tags in the app's
// repository, then the image itself when nothing else names it. An image
// that is already gone is not an error; one a container still uses is.
func (im *Images) Remove(ctx context.Context, ref string) error {
	id, tags, err := im.localImage(ctx, ref)
	if errors.Is(err, ErrImageGone) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, t := range tags {
		if err := im.removeLocal(ctx, t); err != nil {
			return err
		}
	}
	// Untagging the last tag removed it; an untagged image goes by ID.
	return im.removeLocal(ctx, id)
}

func (im *Images) removeLocal(ctx context.Context, ref string) error {
	_, err := im.cli.ImageRemove(ctx, ref, client.ImageRemoveOptions{PruneChildren: true})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove image %s: %w", ref, err)
	}
	return nil
}

// localImage finds ref in the engine: by itself, or (a digest reference
// the engine has no record of, since pushes do not go through it) by the
// image ID its manifest names in the registry. It returns the image ID and
// the tags it has in the app's repository.
func (im *Images) localImage(ctx context.Context, ref string) (id string, tags []string, err error) {
	ins, err := im.cli.ImageInspect(ctx, ref)
	if err != nil && !cerrdefs.IsNotFound(err) {
		return "", nil, fmt.Errorf("inspect image %s: %w", ref, err)
	}
	if err != nil {
		cfg, rerr := im.configDigest(ctx, ref)
		if rerr != nil {
			return "", nil, rerr
		}
		if ins, err = im.cli.ImageInspect(ctx, cfg); err != nil {
			if cerrdefs.IsNotFound(err) {
				return "", nil, fmt.Errorf("%w: %s is not in the engine", ErrImageGone, ref)
			}
			return "", nil, fmt.Errorf("inspect image %s: %w", cfg, err)
		}
	}
	repo := repoOf(ref)
	if repo == "" && ins.Config != nil && ins.Config.Labels[LabelApp] != "" {
		// An image ID: its tags in its app's repository.
		repo = im.Repository(ins.Config.Labels[LabelApp])
	}
	for _, t := range ins.RepoTags {
		if repo != "" && repoOf(t) == repo && !strings.HasSuffix(t, ":"+CacheTag) {
			tags = append(tags, t)
		}
	}
	return ins.ID, tags, nil
}

// repoOf returns the repository of a tag or digest reference ("" for an
// image ID).
func repoOf(ref string) string {
	if strings.HasPrefix(ref, "sha256:") {
		return ""
	}
	if i := strings.Index(ref, "@"); i >= 0 {
		return ref[:i]
	}
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		return ref[:i]
	}
	return ref
}

func (r Registry) nameOpts() []name.Option {
	if r.Insecure {
		return []name.Option{name.Insecure}
	}
	return nil
}

func (r Registry) remoteOpts(ctx context.Context) []remote.Option {
	auth := authn.Anonymous
	if r.Username != "" {
		auth = &authn.Basic{Username: r.Username, Password: r.Password}
	}
	return []remote.Option{remote.WithContext(ctx), remote.WithAuth(auth),
		remote.WithTransport(plainHTTPGuard{next: remote.DefaultTransport, allowed: r.Insecure})}
}

// plainHTTPGuard refuses to send credentials over plain HTTP to a
// registry off loopback unless Insecure says so: go-containerregistry
// speaks HTTP to private (RFC 1918) and .local registries when HTTPS
// fails, which would put a password on the wire in the clear.
type plainHTTPGuard struct {
	next    http.RoundTripper
	allowed bool
}

func (g plainHTTPGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && !g.allowed && req.Header.Get("Authorization") != "" && !isLoopback(req.URL.Hostname()) {
		return nil, fmt.Errorf("refusing to send registry credentials over plain HTTP to %s: use a registry with TLS, or --registry-insecure to allow it", req.URL.Host)
	}
	return g.next.RoundTrip(req)
}

// isLoopback says whether host names this machine.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Lookup returns the image a commit was built into, when there is one: its
// SHA tag in the registry (or, with none, on the engine). A commit is built
// once: a second build of it (its artifact record was collected, a server
// with a new data dir) takes this image instead of making another, which
// the SHA tag would refuse.
func (im *Images) Lookup(ctx context.Context, app, sha string) (Built, bool, error) {
	tag := im.Repository(app) + ":" + sha
	if im.reg.Repo == "" {
		ins, err := im.cli.ImageInspect(ctx, tag)
		if cerrdefs.IsNotFound(err) {
			return Built{}, false, nil
		}
		if err != nil {
			return Built{}, false, fmt.Errorf("look up %s: %w", tag, err)
		}
		return Built{Ref: ins.ID, Digest: ins.ID, ImageID: ins.ID}, true, nil
	}
	ref, err := name.NewTag(tag, im.reg.nameOpts()...)
	if err != nil {
		return Built{}, false, fmt.Errorf("%w: image tag %q: %v", core.ErrInvalid, tag, err)
	}
	desc, err := remote.Head(ref, im.reg.remoteOpts(ctx)...)
	if isNotFound(err) {
		return Built{}, false, nil
	}
	if err != nil {
		return Built{}, false, fmt.Errorf("look up %s in %s: %w", tag, im.reg, err)
	}
	digest := desc.Digest.String()
	return Built{Ref: im.Repository(app) + "@" + digest, Digest: digest}, true, nil
}
