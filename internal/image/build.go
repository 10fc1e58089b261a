package image

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/client"

	"github.com/cutover/cutover/internal/core"
)

// Build builds req's commit into an image tagged REPO/APP:SHA, streaming
// the engine's output to out as text lines, and with a registry pushes it
// under that tag unless the tag already names another image (ErrTagExists,
// nothing pushed). The engine's own layer cache makes a rebuild of
// unchanged steps fast; cutover.built makes each build's image ID unique,
// which is fine since a commit is built once.
func (im *Images) Build(ctx context.Context, req BuildRequest, out io.Writer) (Built, error) {
	if err := core.ValidateName("app", req.App); err != nil {
		return Built{}, err
	}
	if err := core.ValidateSHA("sha", req.SHA); err != nil {
		return Built{}, err
	}
	if out == nil {
		out = io.Discard
	}
	tag := im.Repository(req.App) + ":" + req.SHA
	if _, err := name.NewTag(tag, im.reg.nameOpts()...); err != nil {
		return Built{}, fmt.Errorf("%w: image tag %q: %v", core.ErrInvalid, tag, err)
	}
	entries, err := scanContext(req.ContextDir, im.maxCtx)
	if err != nil {
		return Built{}, err
	}
	dockerfile, err := dockerfilePath(req.ContextDir, req.Dockerfile, entries)
	if err != nil {
		return Built{}, err
	}
	labels := maps.Clone(req.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	// cutover's own labels win: an app cannot claim another commit.
	labels[LabelApp] = req.App
	labels[LabelCommit] = req.SHA
	labels[LabelBuilt] = time.Now().UTC().Format(time.RFC3339)

	// The build gets a tag of its own; REPO/APP:SHA is given only once
	// the registry (or, without one, the engine) accepted the image, so a
	// refused build moves no tag.
	buildTag := im.Repository(req.App) + ":build-" + core.ShortSHA(req.SHA) + "-" + randomSuffix()
	start := time.Now()
	capped := &cappedWriter{w: out, left: DefaultMaxOutputBytes}
	err = im.buildOnce(ctx, req.ContextDir, entries, dockerfile, buildTag, labels, capped)
	if err != nil && vanished(err) {
		// Another client of the engine removed an image the legacy
		// builder was using (a cached parent, or the new image itself
		// while it was still untagged: a concurrent prune of dangling
		// images): once more, mostly from the cache.
		fmt.Fprintln(capped, "an image was removed from the engine during the build; building again")
		err = im.buildOnce(ctx, req.ContextDir, entries, dockerfile, buildTag, labels, capped)
	}
	if err != nil {
		_ = im.removeLocal(context.WithoutCancel(ctx), buildTag)
		return Built{}, fmt.Errorf("%s: %w", tag, err)
	}
	// Whatever happens next, the build's own tag goes; the image stays
	// when REPO/APP:SHA names it.
	defer func() { _ = im.removeLocal(context.WithoutCancel(ctx), buildTag) }()
	ins, err := im.cli.ImageInspect(ctx, buildTag)
	if err != nil {
		return Built{}, fmt.Errorf("inspect %s after its build: %w", tag, err)
	}
	b := Built{Ref: ins.ID, Digest: ins.ID, ImageID: ins.ID, Size: ins.Size}
	im.log.Info("image built", "app", req.App, "sha", core.ShortSHA(req.SHA), "image", ins.ID, "bytes", ins.Size, "took", time.Since(start).Round(time.Millisecond))
	if im.reg.Repo == "" {
		// The engine is the record: its SHA tag does not move either.
		cur, err := im.cli.ImageInspect(ctx, tag)
		switch {
		case err == nil && cur.ID != ins.ID:
			return Built{}, &TagExistsError{Tag: tag, Existing: cur.ID, New: ins.ID}
		case err != nil && !cerrdefs.IsNotFound(err):
			return Built{}, fmt.Errorf("inspect %s: %w", tag, err)
		}
	} else {
		digest, pushed, err := im.push(ctx, tag, ins.ID, out)
		if err != nil {
			return Built{}, err
		}
		b.Digest, b.Pushed = digest, pushed
		b.Ref = im.Repository(req.App) + "@" + digest
	}
	if _, err := im.cli.ImageTag(ctx, client.ImageTagOptions{Source: ins.ID, Target: tag}); err != nil {
		return Built{}, fmt.Errorf("tag image %s as %s: %w", ins.ID, tag, err)
	}
	return b, nil
}

// vanished says whether a build failed because an image it used was
// removed under it by another client of the engine.
func vanished(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "unknown parent image ID") ||
		(strings.Contains(msg, "failed to get digest") && strings.Contains(msg, "no such file or directory"))
}

// randomSuffix names one build's temporary tag.
func randomSuffix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// buildOnce sends the context to the engine and follows the build to its
// end. A failure of the commit's own build (a failing step, a missing COPY
// source, a Dockerfile the engine cannot parse) is core.ErrBuildFailed
// with the engine's message; anything else is the engine's.
func (im *Images) buildOnce(ctx context.Context, dir string, entries []ctxEntry, dockerfile, tag string, labels map[string]string, out io.Writer) error {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeContext(pw, dir, entries)) }()
	defer pr.Close()
	res, err := im.cli.ImageBuild(ctx, pr, client.ImageBuildOptions{
		Tags:        []string{tag},
		Dockerfile:  dockerfile,
		Labels:      labels,
		Remove:      true,
		ForceRemove: true,
		Version:     build.BuilderV1,
	})
	if cerrdefs.IsInvalidArgument(err) {
		fmt.Fprintln(out, "ERROR:", err)
		return fmt.Errorf("%w: %w", core.ErrBuildFailed, err)
	}
	if err != nil {
		return fmt.Errorf("engine at %s: %w", im.host, err)
	}
	defer res.Body.Close()
	_, err = readBuildStream(res.Body, out)
	return err
}

// buildMessage is one line of the engine's JSON message stream.
type buildMessage struct {
	Stream      string `json:"stream"`
	Status      string `json:"status"`
	ID          string `json:"id"`
	Progress    string `json:"progress"`
	Error       string `json:"error"`
	ErrorDetail *struct {
		Message string `json:"message"`
	} `json:"errorDetail"`
	Aux json.RawMessage `json:"aux"`
}

// readBuildStream copies the build's output to out as text and returns
// the built image's ID (from the aux message, "" if the engine sent none)
// or the engine's message as core.ErrBuildFailed.
func readBuildStream(r io.Reader, out io.Writer) (string, error) {
	dec := json.NewDecoder(r)
	var id string
	for {
		var m buildMessage
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return id, nil
			}
			return "", fmt.Errorf("reading the engine's build output: %w", err)
		}
		switch {
		case m.ErrorDetail != nil && m.ErrorDetail.Message != "":
			fmt.Fprintln(out, "ERROR:", m.ErrorDetail.Message)
			return "", fmt.Errorf("%w: %s", core.ErrBuildFailed, strings.TrimSpace(m.ErrorDetail.Message))
		case m.Error != "":
			fmt.Fprintln(out, "ERROR:", m.Error)
			return "", fmt.Errorf("%w: %s", core.ErrBuildFailed, strings.TrimSpace(m.Error))
		case m.Stream != "":
			io.WriteString(out, m.Stream)
		case m.Status != "":
			line := m.Status
			if m.ID != "" {
				line = m.ID + ": " + line
			}
			if m.Progress != "" {
				line += " " + m.Progress
			}
			fmt.Fprintln(out, line)
		case len(m.Aux) > 0:
			var aux struct {
				ID string `json:"ID"`
			}
			if json.Unmarshal(m.Aux, &aux) == nil && aux.ID != "" {
				id = aux.ID
			}
		}
	}
}

// cappedWriter passes on at most left bytes, then notes the cut once.
type cappedWriter struct {
	w    io.Writer
	left int64
	cut  bool
}

func (c *cappedWriter) Write(p []byte) (int, error) {
	if c.left <= 0 {
		if !c.cut {
			c.cut = true
			_, _ = io.WriteString(c.w, "\n[build output cut: over the limit]\n")
		}
		return len(p), nil
	}
	q := p
	if int64(len(q)) > c.left {
		q = q[:c.left]
	}
	c.left -= int64(len(q))
	if _, err := c.w.Write(q); err != nil {
		return 0, err
	}
	return len(p), nil
}
