// Package build turns one commit into an artifact, once: it exports the
// exact commit (never a working tree), runs the manifest's build command
// without a shell, digests the result and stores it read-only under
// Root/APP/SHA.
package build

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/cutover/cutover/internal/command"
	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/gitx"
	"github.com/cutover/cutover/internal/manifest"
)

const (
	// completeMarker is written last; a directory without it is not an artifact.
	completeMarker = ".cutover-artifact"
	// imageMarker holds the image reference of a runtime docker artifact
	// (written before completeMarker).
	imageMarker = ".cutover-image"
	// LogName is the build log kept beside each artifact directory.
	logSuffix = ".build.log"
	// killGrace is how long the output pipes may stay open after the build
	// ended or its process group was killed.
	killGrace = 2 * time.Second

	// DefaultMaxOutputBytes bounds the build output kept in the build log
	// and streamed to the caller (the end of the output is kept too).
	DefaultMaxOutputBytes = 16 << 20
	// DefaultMaxArtifactBytes bounds an artifact's size.
	DefaultMaxArtifactBytes = 2 << 30
)

// ErrArtifactTooLarge says a build produced more than MaxArtifactBytes.
var ErrArtifactTooLarge = errors.New("artifact too large")

// buildEnvAllow lists the variables a build inherits from the server beyond
// command.BaseEnv: what toolchains need, never the server's own secrets.
var buildEnvAllow = []string{"GOCACHE", "GOPATH", "GOMODCACHE", "GOPROXY", "GOFLAGS", "GONOSUMDB", "GOPRIVATE", "GOTOOLCHAIN", "CGO_ENABLED"}

// Builder builds artifacts under Root.
type Builder struct {
	Root   string
	Logger *slog.Logger
	// Repos gives the local path of an app's repository (a remote one's
	// mirror); nil reads app.Repo as a local path.
	Repos interface {
		Path(ctx context.Context, repo string) (string, error)
	}
	// MaxOutputBytes bounds the build output kept and streamed
	// (0 = DefaultMaxOutputBytes).
	MaxOutputBytes int64
	// MaxArtifactBytes refuses an artifact whose files add up to more
	// (0 = DefaultMaxArtifactBytes).
	MaxArtifactBytes int64
	// Images builds the image of an app whose manifest says runtime:
	// docker (internal/image); nil means this server builds none, and
	// NoImages says why.
	Images   Images
	NoImages string

	// flight makes concurrent builds of the same commit share one run.
	flight singleflight.Group
}

// Images builds container images from a build context; internal/image
// implements it over the Docker Engine API and a registry. Removing
// images is the runtime's job (the docker driver prunes them with their
// stopped containers on every host), not the builder's.
type Images interface {
	// BuildImage builds dir (with dockerfile, relative to dir) into the
	// image of app at sha, writing the engine's output to out, pushes it
	// when a registry is configured, and returns its reference by digest
	// (what deploys run) and that digest.
	BuildImage(ctx context.Context, app, sha, dir, dockerfile string, out io.Writer) (ref, digest string, size int64, err error)
	// ImageAvailable reports whether an image can still be run: on the
	// engine, or in the registry to pull it back from.
	ImageAvailable(ctx context.Context, ref string) error
	// CommitImage returns the image app's commit sha was built into
	// earlier (its SHA tag), when there is one: a commit is built once.
	CommitImage(ctx context.Context, app, sha string) (ref, digest string, found bool, err error)
}

// Build returns the artifact of app at sha, building it on first use. A
// second call for the same SHA is a no-op that returns the stored artifact;
// concurrent calls for the same SHA share one build.
func (b *Builder) Build(ctx context.Context, app core.App, sha string, logw io.Writer) (core.Artifact, *manifest.Manifest, error) {
	if err := core.ValidateName("app", app.Name); err != nil {
		return core.Artifact{}, nil, err
	}
	if err := core.ValidateSHA("sha", sha); err != nil {
		return core.Artifact{}, nil, err
	}
	if logw == nil {
		logw = io.Discard
	}
	type result struct {
		a core.Artifact
		m *manifest.Manifest
	}
	v, err, _ := b.flight.Do(app.Name+"/"+sha, func() (any, error) {
		// Shared by every caller: one caller going away must not cancel it
		// (the build has its own timeout).
		a, m, err := b.build(context.WithoutCancel(ctx), app, sha, logw)
		return result{a, m}, err
	})
	if err != nil {
		return core.Artifact{}, nil, err
	}
	r := v.(result)
	return r.a, r.m, nil
}

func (b *Builder) build(ctx context.Context, app core.App, sha string, logw io.Writer) (core.Artifact, *manifest.Manifest, error) {
	dst := filepath.Join(b.Root, app.Name, sha)
	if a, m, err := b.existing(app.Name, sha, dst); err == nil {
		return a, m, nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return core.Artifact{}, nil, err
	}
	// A leftover from a crashed build is not an artifact: clear it.
	_ = makeWritable(dst)
	_ = os.RemoveAll(dst)

	work, err := os.MkdirTemp(filepath.Dir(dst), "."+sha[:12]+"-")
	if err != nil {
		return core.Artifact{}, nil, err
	}
	ok := false
	defer func() {
		if !ok {
			_ = makeWritable(work)
			_ = os.RemoveAll(work)
		}
	}()
	repo := app.Repo
	if b.Repos != nil {
		if repo, err = b.Repos.Path(ctx, app.Repo); err != nil {
			return core.Artifact{}, nil, fmt.Errorf("fetch %s: %w", app.Repo, err)
		}
	}
	if err := gitx.Export(ctx, repo, sha, work); err != nil {
		return core.Artifact{}, nil, fmt.Errorf("export %s: %w", core.ShortSHA(sha), err)
	}
	m, err := manifest.Load(work)
	if err != nil {
		return core.Artifact{}, nil, fmt.Errorf("%w: commit %s: %v", core.ErrInvalid, core.ShortSHA(sha), err)
	}
	logPath := dst + logSuffix
	logFile, err := os.Create(logPath)
	if err != nil {
		return core.Artifact{}, nil, err
	}
	defer logFile.Close()
	out := newCappedOutput(io.MultiWriter(logFile, logw), cmp.Or(b.MaxOutputBytes, DefaultMaxOutputBytes))
	defer out.Close()             // says what was dropped, on every return
	if len(m.Build.Command) > 0 { // runtime docker may leave the build to its Dockerfile
		err = run(ctx, work, m.Build.Command, m.Build.Timeout, out)
	}
	if err == nil && m.Runtime == manifest.RuntimeDocker && b.Images == nil {
		err = fmt.Errorf("%s has runtime: docker, but this server builds no images: %s", manifest.FileName, cmp.Or(b.NoImages, "no Docker engine configured"))
	}
	if err != nil {
		// The output went to the caller and the log; the server's paths stay on the server.
		b.logger().Warn("build failed", "app", app.Name, "sha", sha, "log", logPath, "err", err)
		return core.Artifact{}, nil, fmt.Errorf("%w: %v", core.ErrBuildFailed, err)
	}
	// Sized before it is digested: a huge artifact is refused without
	// reading it.
	if err := checkSize(work, cmp.Or(b.MaxArtifactBytes, DefaultMaxArtifactBytes)); err != nil {
		return core.Artifact{}, nil, fmt.Errorf("%w: %s at %s: %w", core.ErrBuildFailed, app.Name, core.ShortSHA(sha), err)
	}
	digest, size, err := Digest(work)
	if err != nil {
		return core.Artifact{}, nil, fmt.Errorf("digest: %w", err)
	}
	ref := Ref(app.Name, sha)
	if m.Runtime == manifest.RuntimeDocker {
		// The image is built from the export, after build.command ran in
		// it (so a FROM scratch image can copy a binary built here).
		bctx, cancel := context.WithTimeout(ctx, m.Build.Timeout)
		var found bool
		ref, digest, found, err = b.Images.CommitImage(bctx, app.Name, sha)
		switch {
		case err == nil && found:
			// Built before (its record was collected, or another data dir
			// built it): that image is the commit's; its tag never moves.
			fmt.Fprintf(out, "image of %s built before: %s (a commit is built once)\n", core.ShortSHA(sha), ref)
		case err == nil:
			ref, digest, size, err = b.Images.BuildImage(bctx, app.Name, sha, filepath.Join(work, filepath.FromSlash(m.Docker.Context)), m.Docker.File, out)
		}
		cancel()
		if err != nil {
			b.logger().Warn("image build failed", "app", app.Name, "sha", sha, "log", logPath, "err", err)
			// The server's paths stay on the server: the manifest's names.
			return core.Artifact{}, nil, fmt.Errorf("%w: image (docker.context %s, docker.file %s): %v", core.ErrBuildFailed, m.Docker.Context, m.Docker.File, err)
		}
		if err := os.WriteFile(filepath.Join(work, imageMarker), []byte(ref+"\n"+digest+"\n"), 0o444); err != nil {
			return core.Artifact{}, nil, err
		}
	}
	_ = out.Close()
	if err := os.Rename(work, dst); err != nil {
		return core.Artifact{}, nil, err
	}
	ok = true
	if err := os.WriteFile(filepath.Join(dst, completeMarker), []byte(digest+"\n"), 0o444); err != nil {
		return core.Artifact{}, nil, err
	}
	if err := makeReadOnly(dst); err != nil {
		return core.Artifact{}, nil, err
	}
	if b.Logger != nil {
		b.Logger.Info("built", "app", app.Name, "sha", core.ShortSHA(sha), "digest", digest, "bytes", size)
	}
	return core.Artifact{App: app.Name, SHA: sha, Digest: digest, Ref: ref, Size: size, BuildLog: logPath, CreatedAt: time.Now().UTC()}, m, nil
}

// existing returns a complete artifact already in dst.
func (b *Builder) existing(app, sha, dst string) (core.Artifact, *manifest.Manifest, error) {
	marker, err := os.ReadFile(filepath.Join(dst, completeMarker))
	if err != nil {
		return core.Artifact{}, nil, err
	}
	m, err := manifest.Load(dst)
	if err != nil {
		return core.Artifact{}, nil, err
	}
	fi, err := os.Stat(dst)
	if err != nil {
		return core.Artifact{}, nil, err
	}
	_, size, err := Digest(dst)
	if err != nil {
		return core.Artifact{}, nil, err
	}
	a := core.Artifact{App: app, SHA: sha, Digest: strings.TrimSpace(string(marker)), Ref: Ref(app, sha), Size: size,
		BuildLog: dst + logSuffix, CreatedAt: fi.ModTime().UTC()}
	if m.Runtime == manifest.RuntimeDocker {
		img, err := os.ReadFile(filepath.Join(dst, imageMarker))
		if err != nil {
			return core.Artifact{}, nil, err
		}
		ref, digest, _ := strings.Cut(strings.TrimSpace(string(img)), "\n")
		if ref == "" || digest == "" {
			return core.Artifact{}, nil, fmt.Errorf("artifact %s: unreadable image record", core.ShortSHA(sha))
		}
		a.Ref, a.Digest = ref, digest
	}
	return a, m, nil
}

// checkSize returns ErrArtifactTooLarge when the files under dir add up
// to more than max bytes; it stops counting there.
func checkSize(dir string, max int64) error {
	var size int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if size += fi.Size(); size > max {
			return fmt.Errorf("%w: its files reach %s (%d bytes) and counting, more than the limit of %s (%d bytes)",
				ErrArtifactTooLarge, humanBytes(size), size, humanBytes(max), max)
		}
		return nil
	})
	return err
}

// humanBytes writes n in the largest binary unit it reaches.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// run executes argv in dir without a shell, in its own process group so a
// timeout kills everything the build started; a program that left the
// group (setsid, a double-forking daemon) is found by the mark in its
// environment and killed too (command.Spec.KillEscaped). Only one that
// also cleared its environment escapes: containing that would take a
// cgroup or a PID namespace, which cutover does not require.
func run(ctx context.Context, dir string, argv []string, timeout time.Duration, out io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err := command.Run(ctx, command.Spec{Argv: argv, Dir: dir, Inherit: buildEnvAllow, Stdout: out, Stderr: out, WaitDelay: killGrace, KillEscaped: true})
	if err == nil {
		return nil
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("build command %q timed out after %s", strings.Join(argv, " "), timeout)
	}
	return fmt.Errorf("build command %q: %w", strings.Join(argv, " "), err)
}

// Digest returns "sha256:<hex>" over the relative path, mode and content of
// every file under dir in lexical order, and the total size.
func Digest(dir string) (string, int64, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || d.Name() == completeMarker || d.Name() == imageMarker {
			return nil
		}
		files = append(files, p)
		return nil
	})
	if err != nil {
		return "", 0, err
	}
	sort.Strings(files)
	h := sha256.New()
	var size int64
	for _, p := range files {
		rel, _ := filepath.Rel(dir, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return "", 0, err
		}
		fmt.Fprintf(h, "%s\x00%o\x00", filepath.ToSlash(rel), fi.Mode()&(fs.ModeSymlink|0o111))
		if fi.Mode()&fs.ModeSymlink != 0 {
			target, _ := os.Readlink(p)
			io.WriteString(h, target)
		} else {
			f, err := os.Open(p)
			if err != nil {
				return "", 0, err
			}
			n, err := io.Copy(h, f)
			f.Close()
			if err != nil {
				return "", 0, err
			}
			size += n
		}
		h.Write([]byte{0})
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), size, nil
}

func makeReadOnly(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink != 0 {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil // directories last, below
		}
		return os.Chmod(p, fi.Mode().Perm()&^0o222)
	})
}

func makeWritable(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		fi, err := d.Info()
		if err == nil {
			_ = os.Chmod(p, fi.Mode().Perm()|0o200)
		}
		return nil
	})
}

// Ref is an artifact's reference: its directory relative to the
// artifacts root (APP/SHA), so the data directory can move. Refs recorded
// as absolute paths by earlier versions stay valid.
func Ref(app, sha string) string { return filepath.Join(app, sha) }

// Dir returns the directory of an artifact reference under root.
func Dir(root, ref string) string {
	if filepath.IsAbs(ref) {
		return ref
	}
	return filepath.Join(root, ref)
}

// IsImage says whether an artifact reference names a container image (by
// digest: NAME@sha256:..., or a local image ID sha256:...) rather than a
// directory.
func IsImage(ref string) bool {
	return strings.HasPrefix(ref, "sha256:") || strings.Contains(ref, "@sha256:")
}

// dir returns the directory kept for an artifact: its Ref, or for an
// image the export it was built from (which holds its manifest).
func (b *Builder) dir(a core.Artifact) string {
	if IsImage(a.Ref) {
		return filepath.Join(b.Root, a.App, a.SHA)
	}
	return Dir(b.Root, a.Ref)
}

// Manifest returns the manifest stored with an artifact (its directory).
func (b *Builder) Manifest(ctx context.Context, a core.Artifact) (*manifest.Manifest, error) {
	if a.Ref == "" {
		return nil, fmt.Errorf("artifact of %s has no directory", core.ShortSHA(a.SHA))
	}
	return manifest.Load(b.dir(a))
}

// Available reports whether an artifact can still be run: its directory
// is complete, and an image is on the engine or in the registry. A
// deployment of an earlier release (a rollback) asks first.
func (b *Builder) Available(ctx context.Context, a core.Artifact) error {
	if _, err := os.Stat(filepath.Join(b.dir(a), completeMarker)); err != nil {
		return fmt.Errorf("%w: the files of artifact %s are gone", core.ErrNotFound, core.ShortSHA(a.SHA))
	}
	if !IsImage(a.Ref) {
		return nil
	}
	if b.Images == nil {
		return fmt.Errorf("image %s: this server has no Docker engine: %s", a.Ref, cmp.Or(b.NoImages, "none configured"))
	}
	return b.Images.ImageAvailable(ctx, a.Ref)
}

func (b *Builder) logger() *slog.Logger {
	if b.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return b.Logger
}

// Remove deletes an artifact's directory (read-only files included). An
// image's copies on the engines are the runtime's to prune.
func (b *Builder) Remove(ctx context.Context, a core.Artifact) error {
	if a.Ref == "" || strings.Contains(a.Ref, "..") {
		return fmt.Errorf("%w: artifact reference %q", core.ErrInvalid, a.Ref)
	}
	dir := b.dir(a)
	if err := makeWritable(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove artifact %s: %w", core.ShortSHA(a.SHA), err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove artifact %s: %w", core.ShortSHA(a.SHA), err)
	}
	_ = os.Remove(dir + logSuffix)
	return nil
}
