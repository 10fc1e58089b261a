package docker

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/cutover/cutover/internal/command"
	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/driver/probe"
)

// RunTask runs a one-off container of the release's image on the first
// host spec.Runtime.Hosts names, waits for it (bounded by ctx and
// spec.Timeout), copies its output to out and removes it. A cancelled or
// timed-out task is killed.
func (d *Driver) RunTask(ctx context.Context, spec core.TaskSpec, out io.Writer) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", spec.Name, err)
	}
	if spec.Artifact == "" {
		return fmt.Errorf("%w: %s has no image to run", core.ErrInvalid, spec.Name)
	}
	engines, err := d.enginesFor(spec.Runtime.Hosts)
	if err != nil {
		return err
	}
	e := engines[0]
	if spec.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, spec.Timeout)
		defer cancel()
	}
	if err := d.ensureImage(ctx, e, spec.Artifact); err != nil {
		return fmt.Errorf("%s: %w", spec.Name, err)
	}
	cfg := &container.Config{
		Image: spec.Artifact,
		Env:   environ(spec.App, spec.Env, spec.Release, spec.Environ, spec.Secrets),
		Labels: map[string]string{
			LabelManaged: "true", LabelApp: spec.App, LabelEnv: spec.Env, LabelRelease: strconv.Itoa(spec.Release),
			LabelArtifact: spec.Artifact, LabelHost: e.Name, LabelOwner: d.cfg.Owner, LabelTask: spec.Name,
		},
	}
	setCommand(cfg, spec.Command)
	hc := &container.HostConfig{Resources: resources(spec.Runtime), LogConfig: logConfig}
	name := fmt.Sprintf("cutover-%s-%s-%s-r%d-%s", spec.App, spec.Env, spec.Name, spec.Release, randomHex(3))
	created, err := e.api.ContainerCreate(ctx, client.ContainerCreateOptions{Config: cfg, HostConfig: hc, Name: name})
	if err != nil {
		return fmt.Errorf("%s: create container on docker host %s: %w", spec.Name, e.Name, err)
	}
	id := created.ID
	cleanup := context.WithoutCancel(ctx)
	defer d.discard(cleanup, e, id) // a forced remove kills it if it still runs

	if _, err := e.api.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", spec.Name, ctx.Err())
		}
		return fmt.Errorf("%s: start container on docker host %s: %w", spec.Name, e.Name, err)
	}
	wait := e.api.ContainerWait(ctx, id, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	var code int64
	select {
	case res := <-wait.Result:
		if res.Error != nil && res.Error.Message != "" {
			return fmt.Errorf("%s: wait: %s", spec.Name, res.Error.Message)
		}
		code = res.StatusCode
	case err := <-wait.Error:
		if ctx.Err() != nil {
			d.logsAfterTimeout(ctx, e, id, out)
			return fmt.Errorf("%s: %w", spec.Name, ctx.Err())
		}
		return fmt.Errorf("%s: wait: %w", spec.Name, err)
	case <-ctx.Done():
		d.logsAfterTimeout(ctx, e, id, out)
		return fmt.Errorf("%s: %w", spec.Name, ctx.Err())
	}
	if err := d.copyLogs(ctx, e, id, 0, out); err != nil {
		return fmt.Errorf("%s: logs: %w", spec.Name, err)
	}
	if code != 0 {
		return fmt.Errorf("%s: exit status %d", spec.Name, code)
	}
	return nil
}

// logsAfterTimeout copies what a task printed before its deadline (or
// cancellation) ended it: what it was doing when it hung is the first
// thing a person asks.
func (d *Driver) logsAfterTimeout(ctx context.Context, e *engine, id string, out io.Writer) {
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := d.copyLogs(lctx, e, id, 0, out); err != nil {
		d.log.Warn("logs of a task that timed out", "container", shortID(id), "host", e.Name, "err", err)
	}
}

// Logs writes a container's output, stdout and stderr as they came (the
// last maxBytes bytes of it when maxBytes > 0). Stopped containers keep
// their logs until Prune removes them.
func (d *Driver) Logs(ctx context.Context, in core.Instance, maxBytes int64, w io.Writer) error {
	e, err := d.engineOf(in)
	if err != nil {
		return err
	}
	err = d.copyLogs(ctx, e, containerOf(in), maxBytes, w)
	if errNotFound(err) {
		return fmt.Errorf("no log kept for instance %s: %w", in.ID, core.ErrNotFound)
	}
	return err
}

func (d *Driver) copyLogs(ctx context.Context, e *engine, id string, maxBytes int64, w io.Writer) error {
	rc, err := e.api.ContainerLogs(ctx, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		return err
	}
	defer rc.Close()
	if maxBytes <= 0 {
		_, err = stdcopy.StdCopy(w, w, rc)
		return err
	}
	t := &command.Buffer{Max: int(maxBytes)}
	if _, err := stdcopy.StdCopy(t, t, rc); err != nil {
		return err
	}
	_, err = w.Write(t.Bytes())
	return err
}

// Exited reports a container that no longer runs: exited, dead, removed,
// or restarting after an exit (the engine's restart policy brings it back,
// but it did exit).
func (d *Driver) Exited(ctx context.Context, in core.Instance) (string, bool) {
	e, err := d.engineOf(in)
	if err != nil {
		return "", false
	}
	res, err := e.api.ContainerInspect(ctx, containerOf(in), client.ContainerInspectOptions{})
	if errNotFound(err) {
		return "removed", true
	}
	if err != nil || res.Container.State == nil {
		return "", false // the engine did not answer: nothing known
	}
	st := res.Container.State
	status := fmt.Sprintf("exited with status %d", st.ExitCode)
	if st.OOMKilled {
		status += " (out of memory)"
	}
	switch {
	case st.Restarting:
		return fmt.Sprintf("%s; the engine is restarting it (restart %d)", status, res.Container.RestartCount), true
	case st.Status == container.StateExited, st.Status == container.StateDead:
		return status, true
	case st.Status == container.StateCreated:
		return "created but never started", true
	}
	return "", false
}

// Probe makes one HTTP request to the instance's published address.
func (d *Driver) Probe(ctx context.Context, in core.Instance, pr core.ProbeRequest) (core.ProbeResult, error) {
	if in.Addr == "" {
		return core.ProbeResult{}, fmt.Errorf("instance %s has no published address", in.ID)
	}
	return probe.HTTP(ctx, in.Addr, pr)
}
