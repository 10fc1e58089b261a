package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/cutover/cutover/internal/command"
	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/driver/probe"
)

// RunTask runs a one-off command of a release (a migration) in the
// artifact directory, without a shell, with the release's environment, in
// its own process group: a timeout or cancellation kills the whole group.
func (d *Driver) RunTask(ctx context.Context, spec core.TaskSpec, out io.Writer) error {
	if len(spec.Command) == 0 {
		return fmt.Errorf("%w: %s command is empty", core.ErrInvalid, spec.Name)
	}
	if spec.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, spec.Timeout)
		defer cancel()
	}
	_, err := command.Run(ctx, command.Spec{
		Argv: spec.Command, Dir: d.artifactDir(spec.Artifact), Stdout: out, Stderr: out, KillEscaped: true,
		Env: extraEnv(core.GroupSpec{App: spec.App, Env: spec.Env, Release: spec.Release, Environ: spec.Environ, Secrets: spec.Secrets}, 0, 0),
	})
	var xe *command.ExitError
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("%s: %w", spec.Name, ctx.Err())
	case errors.As(err, &xe) && xe.Code >= 0:
		return fmt.Errorf("%s: %s", spec.Name, describeExit(xe.Code))
	}
	return fmt.Errorf("%s: %w", spec.Name, err)
}

// Logs writes the end of an instance's log (at most maxBytes; 0 = the
// whole current file). Logs outlive their instance, so a failed or
// stopped colour can still be read.
func (d *Driver) Logs(ctx context.Context, in core.Instance, maxBytes int64, w io.Writer) error {
	if strings.ContainsAny(in.ID+in.App+in.Env, "/\\") || strings.HasPrefix(in.ID, ".") {
		return fmt.Errorf("%w: instance %q", core.ErrInvalid, in.ID)
	}
	f, err := os.Open(d.logPath(in))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("no log kept for instance %s: %w", in.ID, core.ErrNotFound)
		}
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	n := fi.Size()
	if maxBytes > 0 && n > maxBytes {
		if _, err := f.Seek(n-maxBytes, io.SeekStart); err != nil {
			return err
		}
		n = maxBytes
	}
	_, err = io.Copy(w, io.LimitReader(f, n))
	return err
}

// Probe makes one HTTP request to the instance's loopback address.
func (d *Driver) Probe(ctx context.Context, in core.Instance, pr core.ProbeRequest) (core.ProbeResult, error) {
	if in.Addr == "" {
		return core.ProbeResult{}, fmt.Errorf("instance %s has no address", in.ID)
	}
	return probe.HTTP(ctx, in.Addr, pr)
}
