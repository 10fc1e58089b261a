package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"strings"
	"time"

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

	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeContext(pw, req.ContextDir, entries)) }()
	defer pr.Close()

	start := time.Now()
	res, err := im.cli.ImageBuild(ctx, pr, client.ImageBuildOptions{
		Tags:        []string{tag},
		Dockerfile:  dockerfile,
		Labels:      labels,
		Remove:      true,
		ForceRemove: true,
		Version:     build.BuilderV1,
	})
	if err != nil {
		return Built{}, fmt.Errorf("build %s: engine at %s: %w", tag, im.host, err)
	}
	capped := &cappedWriter{w: out, left: DefaultMaxOutputBytes}
	id, err := readBuildStream(res.Body, capped)
	_ = res.Body.Close()
	if err != nil {
		return Built{}, fmt.Errorf("%w: %s: %w", core.ErrBuildFailed, tag, err)
	}
	ins, err := im.cli.ImageInspect(ctx, tag)
	if err != nil {
		return Built{}, fmt.Errorf("inspect %s after its build: %w", tag, err)
	}
	if id != "" && id != ins.ID {
		return Built{}, fmt.Errorf("build %s: the engine built %s but the tag names %s (another build of this commit at the same time?)", tag, id, ins.ID)
	}
	b := Built{Ref: ins.ID, Digest: ins.ID, ImageID: ins.ID, Size: ins.Size}
	im.log.Info("image built", "app", req.App, "sha", core.ShortSHA(req.SHA), "image", ins.ID, "bytes", ins.Size, "took", time.Since(start).Round(time.Millisecond))
	if im.reg.Repo == "" {
		return b, nil
	}
	digest, pushed, err := im.push(ctx, tag, ins.ID, out)
	if err != nil {
		return Built{}, err
	}
	b.Digest, b.Pushed = digest, pushed
	b.Ref = im.Repository(req.App) + "@" + digest
	return b, nil
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
// or the engine's error.
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
			return "", errors.New(strings.TrimSpace(m.ErrorDetail.Message))
		case m.Error != "":
			fmt.Fprintln(out, "ERROR:", m.Error)
			return "", errors.New(strings.TrimSpace(m.Error))
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
