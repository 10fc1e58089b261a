package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/moby/moby/client"

	"github.com/cutover/cutover/internal/core"
)

// push writes the local image id under tag (REPO/APP:SHA) unless the
// registry already has it there, and returns the manifest digest the tag
// names. A tag naming another image is refused with a *TagExistsError and
// nothing is written. The cache tag follows, best effort.
//
// The image is read back from the engine (ImageSave into a temporary
// file) and written with go-containerregistry, so its manifest digest is
// known before the check and the credentials never reach the engine.
func (im *Images) push(ctx context.Context, tag, id string, out io.Writer) (digest string, pushed bool, err error) {
	ref, err := name.NewTag(tag, im.reg.nameOpts()...)
	if err != nil {
		return "", false, fmt.Errorf("%w: image tag %q: %v", core.ErrInvalid, tag, err)
	}
	img, cleanup, err := im.saved(ctx, id)
	if err != nil {
		return "", false, err
	}
	defer cleanup()
	d, err := img.Digest()
	if err != nil {
		return "", false, fmt.Errorf("digest of %s: %w", tag, err)
	}
	digest = d.String()
	opts := im.reg.remoteOpts(ctx)

	existing, same, err := im.sameImage(ref, digest, id, opts)
	if err != nil {
		return "", false, err
	}
	if existing != "" {
		if !same {
			return "", false, &TagExistsError{Tag: tag, Existing: existing, New: digest + " (image " + id + ")"}
		}
		fmt.Fprintf(out, "%s already in the registry as %s\n", tag, existing)
		im.log.Info("image already pushed", "tag", tag, "digest", existing)
		return existing, false, nil
	}

	fmt.Fprintf(out, "pushing %s (%s)\n", tag, digest)
	if err := remote.Write(ref, img, opts...); err != nil {
		return "", false, fmt.Errorf("push %s to %s: %w", tag, im.reg, err)
	}
	fmt.Fprintf(out, "pushed %s\n", tag)
	im.log.Info("image pushed", "tag", tag, "digest", digest)

	cache := ref.Context().Tag(CacheTag)
	if err := remote.Tag(cache, img, opts...); err != nil {
		im.log.Warn("cache tag not pushed", "tag", cache.String(), "err", err)
	}
	return digest, true, nil
}

// sameImage looks tag up in the registry: existing is the manifest digest
// it names ("" when absent), same whether that is this image (the same
// manifest, or a manifest of the same config, i.e. the same image ID).
func (im *Images) sameImage(ref name.Tag, digest, id string, opts []remote.Option) (existing string, same bool, err error) {
	desc, err := remote.Head(ref, opts...)
	if isNotFound(err) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("look up %s in %s: %w", ref, im.reg, err)
	}
	existing = desc.Digest.String()
	if existing == digest {
		return existing, true, nil
	}
	cfg, err := configOf(ref, opts)
	if err != nil {
		return "", false, fmt.Errorf("look up %s in %s: %w", ref, im.reg, err)
	}
	return existing, cfg == id, nil
}

// configOf returns the config digest (the engine's image ID) of the image
// ref names in the registry ("" for an index).
func configOf(ref name.Reference, opts []remote.Option) (string, error) {
	desc, err := remote.Get(ref, opts...)
	if err != nil {
		return "", err
	}
	if desc.MediaType.IsIndex() {
		return "", nil
	}
	img, err := desc.Image()
	if err != nil {
		return "", err
	}
	h, err := img.ConfigName()
	if err != nil {
		return "", err
	}
	return h.String(), nil
}

// saved reads image id out of the engine into a temporary file and opens
// it as an image.
func (im *Images) saved(ctx context.Context, id string) (v1.Image, func(), error) {
	f, err := os.CreateTemp(im.tmp, "cutover-image-*.tar")
	if err != nil {
		return nil, nil, err
	}
	cleanup := func() { _ = os.Remove(f.Name()) }
	rc, err := im.cli.ImageSave(ctx, []string{id})
	if err != nil {
		f.Close()
		cleanup()
		return nil, nil, fmt.Errorf("export image %s from the engine: %w", id, err)
	}
	_, err = io.Copy(f, rc)
	rc.Close()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("export image %s from the engine: %w", id, err)
	}
	img, err := tarball.ImageFromPath(f.Name(), nil)
	if err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("read exported image %s: %w", id, err)
	}
	return img, cleanup, nil
}

// Tag adds a release tag (rc-112, v2.4.5) to the image ref names: in the
// registry when ref is there, and to the local copy when the engine has
// one. A tag already naming another image is refused (ErrTagExists);
// naming the same one is a no-op.
func (im *Images) Tag(ctx context.Context, ref, tag string) error {
	if im.inRegistry(ref) {
		src, err := name.ParseReference(ref, im.reg.nameOpts()...)
		if err != nil {
			return fmt.Errorf("%w: image reference %q: %v", core.ErrInvalid, ref, err)
		}
		dst, err := name.NewTag(src.Context().String()+":"+tag, im.reg.nameOpts()...)
		if err != nil {
			return fmt.Errorf("%w: tag %q: %v", core.ErrInvalid, tag, err)
		}
		opts := im.reg.remoteOpts(ctx)
		desc, err := remote.Get(src, opts...)
		if isNotFound(err) {
			return fmt.Errorf("%w: %s is not in %s", ErrImageGone, ref, im.reg)
		}
		if err != nil {
			return fmt.Errorf("look up %s in %s: %w", ref, im.reg, err)
		}
		cur, err := remote.Head(dst, opts...)
		switch {
		case isNotFound(err):
			if err := remote.Tag(dst, desc, opts...); err != nil {
				return fmt.Errorf("tag %s as %s in %s: %w", ref, dst, im.reg, err)
			}
			im.log.Info("image tagged", "ref", ref, "tag", dst.String())
		case err != nil:
			return fmt.Errorf("look up %s in %s: %w", dst, im.reg, err)
		case cur.Digest != desc.Digest:
			return &TagExistsError{Tag: dst.String(), Existing: cur.Digest.String(), New: desc.Digest.String()}
		}
	}
	return im.tagLocal(ctx, ref, tag)
}

// tagLocal gives the local copy of ref the tag in its app's repository,
// refusing to move a local tag naming another image. Without a registry
// the app comes from the image's cutover.app label.
func (im *Images) tagLocal(ctx context.Context, ref, tag string) error {
	id, _, err := im.localImage(ctx, ref)
	if errors.Is(err, ErrImageGone) && im.inRegistry(ref) {
		return nil // only in the registry: tagged there
	}
	if err != nil {
		return err
	}
	ins, err := im.cli.ImageInspect(ctx, id)
	if err != nil {
		return fmt.Errorf("inspect image %s: %w", id, err)
	}
	repo := repoOf(ref)
	if repo == "" {
		app := ""
		if ins.Config != nil {
			app = ins.Config.Labels[LabelApp]
		}
		if app == "" {
			return fmt.Errorf("%w: image %s has no %s label: cannot tell its repository", core.ErrInvalid, ref, LabelApp)
		}
		repo = im.Repository(app)
	}
	dst := repo + ":" + tag
	if _, err := name.NewTag(dst, im.reg.nameOpts()...); err != nil {
		return fmt.Errorf("%w: tag %q: %v", core.ErrInvalid, tag, err)
	}
	cur, err := im.cli.ImageInspect(ctx, dst)
	switch {
	case err == nil && cur.ID == id:
		return nil
	case err == nil:
		if im.inRegistry(ref) {
			// The registry is the record; a stale local tag is only logged.
			im.log.Warn("local tag names another image, left as it is", "tag", dst, "local", cur.ID, "image", id)
			return nil
		}
		return &TagExistsError{Tag: dst, Existing: cur.ID, New: id}
	case !cerrdefs.IsNotFound(err):
		return fmt.Errorf("inspect image %s: %w", dst, err)
	}
	if _, err := im.cli.ImageTag(ctx, client.ImageTagOptions{Source: id, Target: dst}); err != nil {
		return fmt.Errorf("tag image %s as %s: %w", id, dst, err)
	}
	return nil
}

// Exists says where ref is: "local" when the engine has the image,
// "registry" when only the registry does, else ErrImageGone.
func (im *Images) Exists(ctx context.Context, ref string) (string, error) {
	_, _, err := im.localImage(ctx, ref)
	if err == nil {
		return "local", nil
	}
	if !errors.Is(err, ErrImageGone) {
		return "", err
	}
	if !im.inRegistry(ref) {
		return "", fmt.Errorf("%w: %s", ErrImageGone, ref)
	}
	r, err := name.ParseReference(ref, im.reg.nameOpts()...)
	if err != nil {
		return "", fmt.Errorf("%w: image reference %q: %v", core.ErrInvalid, ref, err)
	}
	_, err = remote.Head(r, im.reg.remoteOpts(ctx)...)
	if isNotFound(err) {
		return "", fmt.Errorf("%w: %s is neither in the engine nor in %s", ErrImageGone, ref, im.reg)
	}
	if err != nil {
		return "", fmt.Errorf("look up %s in %s: %w", ref, im.reg, err)
	}
	return "registry", nil
}

// Delete removes ref's manifest from the registry, by digest (a tag
// reference is resolved first). One already gone is not an error.
func (im *Images) Delete(ctx context.Context, ref string) error {
	if !im.inRegistry(ref) {
		return fmt.Errorf("%w: %s is not in the registry %s", core.ErrInvalid, ref, im.reg)
	}
	r, err := name.ParseReference(ref, im.reg.nameOpts()...)
	if err != nil {
		return fmt.Errorf("%w: image reference %q: %v", core.ErrInvalid, ref, err)
	}
	opts := im.reg.remoteOpts(ctx)
	d, ok := r.(name.Digest)
	if !ok {
		desc, err := remote.Head(r, opts...)
		if isNotFound(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("look up %s in %s: %w", ref, im.reg, err)
		}
		d = r.Context().Digest(desc.Digest.String())
	}
	if err := remote.Delete(d, opts...); err != nil && !isNotFound(err) {
		return fmt.Errorf("delete %s from %s: %w", d, im.reg, err)
	}
	im.log.Info("image deleted from the registry", "ref", d.String())
	return nil
}

// configDigest returns the image ID a registry reference's manifest names;
// ErrImageGone when ref is not in the registry.
func (im *Images) configDigest(ctx context.Context, ref string) (string, error) {
	if !im.inRegistry(ref) {
		return "", fmt.Errorf("%w: %s is not in the engine", ErrImageGone, ref)
	}
	r, err := name.ParseReference(ref, im.reg.nameOpts()...)
	if err != nil {
		return "", fmt.Errorf("%w: image reference %q: %v", core.ErrInvalid, ref, err)
	}
	cfg, err := configOf(r, im.reg.remoteOpts(ctx))
	if isNotFound(err) {
		return "", fmt.Errorf("%w: %s is neither in the engine nor in %s", ErrImageGone, ref, im.reg)
	}
	if err != nil {
		return "", fmt.Errorf("look up %s in %s: %w", ref, im.reg, err)
	}
	if cfg == "" {
		return "", fmt.Errorf("%w: %s is not in the engine", ErrImageGone, ref)
	}
	return cfg, nil
}

// inRegistry says whether ref names a repository in the configured
// registry; only those are looked up there (never a public default).
func (im *Images) inRegistry(ref string) bool {
	return im.reg.Repo != "" && strings.HasPrefix(ref, im.reg.Repo+"/")
}

// isNotFound says whether a registry answered 404 (or MANIFEST_UNKNOWN).
func isNotFound(err error) bool {
	var terr *transport.Error
	if !errors.As(err, &terr) {
		return false
	}
	if terr.StatusCode == http.StatusNotFound {
		return true
	}
	for _, d := range terr.Errors {
		if d.Code == transport.ManifestUnknownErrorCode || d.Code == transport.NameUnknownErrorCode {
			return true
		}
	}
	return false
}
