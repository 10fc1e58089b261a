package docker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/cutover/cutover/internal/core"
)

// Start starts spec.Count containers on every host spec.Runtime.Hosts
// names, all at once. It is all or nothing: if any container on any host
// cannot be created or started, every container this call created is
// removed and the error returned.
func (d *Driver) Start(ctx context.Context, spec core.GroupSpec) ([]core.Instance, error) {
	if spec.Count < 1 {
		return nil, fmt.Errorf("%w: instance count %d", core.ErrInvalid, spec.Count)
	}
	if spec.Artifact == "" {
		return nil, fmt.Errorf("%w: no image to run", core.ErrInvalid)
	}
	engines, err := d.enginesFor(spec.Runtime.Hosts)
	if err != nil {
		return nil, err
	}
	restart, err := restartPolicy(spec.Runtime.Restart)
	if err != nil {
		return nil, err
	}
	port := spec.Runtime.Port
	if port == 0 {
		port = DefaultPort
	}
	cport, ok := network.PortFrom(uint16(port), network.TCP)
	if !ok || port < 0 || port > math.MaxUint16 {
		return nil, fmt.Errorf("%w: port %d", core.ErrInvalid, spec.Runtime.Port)
	}

	type slot struct {
		e     *engine
		index int
		id    string // container ID once created
		in    core.Instance
		err   error
	}
	var slots []*slot
	for _, e := range engines {
		for i := range spec.Count {
			slots = append(slots, &slot{e: e, index: i})
		}
	}
	// Images first, once per host, so a missing image fails before any
	// container exists.
	var wg sync.WaitGroup
	imgErrs := make([]error, len(engines))
	for i, e := range engines {
		wg.Go(func() { imgErrs[i] = d.ensureImage(ctx, e, spec.Artifact) })
	}
	wg.Wait()
	if err := errors.Join(imgErrs...); err != nil {
		return nil, err
	}
	for _, s := range slots {
		wg.Go(func() {
			s.id, s.in, s.err = d.startOne(ctx, s.e, spec, s.index, cport, restart)
		})
	}
	wg.Wait()
	var errs []error
	for _, s := range slots {
		if s.err != nil {
			errs = append(errs, fmt.Errorf("instance %d of %s/%s %s on docker host %s: %w", s.index, spec.App, spec.Env, spec.Colour, s.e.Name, s.err))
		}
	}
	if len(errs) > 0 {
		cctx := context.WithoutCancel(ctx)
		for _, s := range slots {
			if s.id != "" {
				wg.Go(func() { d.discard(cctx, s.e, s.id) })
			}
		}
		wg.Wait()
		return nil, errors.Join(errs...)
	}
	out := make([]core.Instance, len(slots))
	for i, s := range slots {
		out[i] = s.in
		d.log.Info("instance started", "instance", s.in.ID, "host", s.e.Name, "addr", s.in.Addr, "container", shortID(s.id))
	}
	return out, nil
}

// startOne creates and starts one container; the ID it returns is set as
// soon as the container exists, so a failed start can be cleaned up.
func (d *Driver) startOne(ctx context.Context, e *engine, spec core.GroupSpec, index int, port network.Port, restart container.RestartPolicy) (string, core.Instance, error) {
	name := fmt.Sprintf("cutover-%s-%s-%s-r%d-%d-%s", spec.App, spec.Env, spec.Colour, spec.Release, index, randomHex(3))
	publish, err := netip.ParseAddr(e.PublishIP)
	if err != nil {
		return "", core.Instance{}, fmt.Errorf("%w: publish address %q of docker host %s", core.ErrInvalid, e.PublishIP, e.Name)
	}
	labels := map[string]string{
		LabelManaged: "true", LabelApp: spec.App, LabelEnv: spec.Env, LabelColour: string(spec.Colour),
		LabelRelease: strconv.Itoa(spec.Release), LabelInstance: strconv.Itoa(index),
		LabelArtifact: spec.Artifact, LabelHost: e.Name, LabelOwner: d.cfg.Owner,
	}
	env := environ(spec.App, spec.Env, spec.Release, spec.Environ, spec.Secrets)
	env = append(env, "CUTOVER_COLOUR="+string(spec.Colour), "CUTOVER_INSTANCE="+strconv.Itoa(index), "PORT="+port.Port())
	cfg := &container.Config{
		Image: spec.Artifact, Env: env, Labels: labels,
		ExposedPorts: network.PortSet{port: {}},
	}
	setCommand(cfg, spec.Command)
	hc := &container.HostConfig{
		PortBindings:  network.PortMap{port: {{HostIP: publish, HostPort: ""}}},
		RestartPolicy: restart,
		Resources:     resources(spec.Runtime),
		LogConfig:     logConfig,
	}
	created, err := e.api.ContainerCreate(ctx, client.ContainerCreateOptions{Config: cfg, HostConfig: hc, Name: name})
	if err != nil {
		return "", core.Instance{}, fmt.Errorf("create container: %w", err)
	}
	if _, err := e.api.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		return created.ID, core.Instance{}, fmt.Errorf("start container: %w", err)
	}
	ins, err := e.api.ContainerInspect(ctx, created.ID, client.ContainerInspectOptions{})
	if err != nil {
		return created.ID, core.Instance{}, fmt.Errorf("inspect container: %w", err)
	}
	return created.ID, instanceOf(e, ins.Container), nil
}

// environ is what a container gets beside its image's environment: HOST
// (overridable), the spec's variables in a stable order, the secrets
// (never logged or put in labels), and cutover's own.
func environ(app, env string, release int, vars, secrets map[string]string) []string {
	out := []string{"HOST=" + DefaultListenHost}
	for _, m := range []map[string]string{vars, secrets} {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			out = append(out, k+"="+m[k])
		}
	}
	return append(out, "CUTOVER_APP="+app, "CUTOVER_ENV="+env, "CUTOVER_RELEASE="+strconv.Itoa(release))
}

// setCommand makes a non-empty argv replace the image's entrypoint and cmd.
func setCommand(cfg *container.Config, argv []string) {
	if len(argv) == 0 {
		return
	}
	cfg.Entrypoint = []string{argv[0]}
	cfg.Cmd = append([]string{}, argv[1:]...)
}

func resources(o core.RuntimeOptions) container.Resources {
	return container.Resources{Memory: o.Memory, NanoCPUs: int64(math.Round(o.CPUs * 1e9))}
}

// restartPolicy maps the manifest's restart key to the engine's policy.
func restartPolicy(s string) (container.RestartPolicy, error) {
	if s == "" {
		s = DefaultRestart
	}
	switch m := container.RestartPolicyMode(s); m {
	case container.RestartPolicyDisabled, container.RestartPolicyOnFailure, container.RestartPolicyUnlessStopped, container.RestartPolicyAlways:
		return container.RestartPolicy{Name: m}, nil
	}
	return container.RestartPolicy{}, fmt.Errorf("%w: restart policy %q (want no, on-failure, unless-stopped or always)", core.ErrInvalid, s)
}

// instanceOf rebuilds an instance from a container's labels and state:
// its ID is the container's name, so it is the same for every driver.
func instanceOf(e *engine, c container.InspectResponse) core.Instance {
	var labels map[string]string
	if c.Config != nil {
		labels = c.Config.Labels
	}
	release, _ := strconv.Atoi(labels[LabelRelease])
	in := core.Instance{
		ID: strings.TrimPrefix(c.Name, "/"), App: labels[LabelApp], Env: labels[LabelEnv],
		Colour: core.Colour(labels[LabelColour]), Release: release,
		Data: map[string]string{"runtime": core.RuntimeDocker, "host": e.Name, "container": c.ID},
	}
	if c.State != nil {
		in.StartedAt, _ = time.Parse(time.RFC3339Nano, c.State.StartedAt)
		if c.State.Status == container.StateCreated {
			in.Data[dataCreated] = "true"
		}
	}
	if c.NetworkSettings != nil {
		for _, bindings := range c.NetworkSettings.Ports {
			for _, b := range bindings {
				if b.HostPort != "" {
					in.Addr = net.JoinHostPort(e.PublishIP, b.HostPort)
				}
			}
		}
	}
	return in
}

// discard stops and removes a container a failed start left behind.
func (d *Driver) discard(ctx context.Context, e *engine, id string) {
	if _, err := e.api.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true}); err != nil && !errNotFound(err) {
		d.log.Warn("remove a container of a failed start", "host", e.Name, "container", shortID(id), "err", err)
	}
}

// dataCreated marks a listed instance whose container was created but
// never started (see List).
const dataCreated = "created"

// Stop stops the instances' containers (SIGTERM, then SIGKILL after
// grace). It does not remove them: their logs stay readable until the
// retention (Prune) collects them. A container that was never started
// (List's Data["created"]) has no logs and would run if the engine still
// carried out its start: it is removed. A container already gone is not
// an error.
func (d *Driver) Stop(ctx context.Context, instances []core.Instance, grace time.Duration) error {
	secs := int(math.Ceil(grace.Seconds()))
	var wg sync.WaitGroup
	errs := make([]error, len(instances))
	for i, in := range instances {
		wg.Go(func() {
			e, err := d.engineOf(in)
			if err != nil {
				errs[i] = err
				return
			}
			if in.Data[dataCreated] == "true" {
				_, err = e.api.ContainerRemove(ctx, containerOf(in), client.ContainerRemoveOptions{Force: true})
				switch {
				case err == nil:
					d.log.Info("instance never started: container removed", "instance", in.ID, "host", e.Name)
				case !errNotFound(err):
					errs[i] = fmt.Errorf("remove %s (never started) on docker host %s: %w", in.ID, e.Name, err)
				}
				return
			}
			// A stopped container stays stopped: with restart "always" the
			// engine would start it again when the daemon restarts.
			if _, err := e.api.ContainerUpdate(ctx, containerOf(in), client.ContainerUpdateOptions{
				RestartPolicy: &container.RestartPolicy{Name: container.RestartPolicyDisabled}}); err != nil && !errNotFound(err) {
				d.log.Warn("clear the restart policy before stopping", "instance", in.ID, "host", e.Name, "err", err)
			}
			_, err = e.api.ContainerStop(ctx, containerOf(in), client.ContainerStopOptions{Timeout: &secs})
			switch {
			case err == nil:
				d.log.Info("instance stopped", "instance", in.ID, "host", e.Name)
			case !errNotFound(err):
				errs[i] = fmt.Errorf("stop %s on docker host %s: %w", in.ID, e.Name, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// List returns the running (or restarting) cutover containers of every
// host, including those another driver value started, and those created
// but never started: a start cut short (the server killed between the
// create and the start) left them, and the engine may still be carrying
// out that start. Such an instance has Data["created"] = "true", and
// Stop removes it rather than stopping it, so the reconcile of a
// restarted server leaves no container of a start nobody recorded.
func (d *Driver) List(ctx context.Context) ([]core.Instance, error) {
	var mu sync.Mutex
	var out []core.Instance
	var wg sync.WaitGroup
	errs := make([]error, len(d.engines))
	for i, e := range d.engines {
		wg.Go(func() {
			f := make(client.Filters).Add("label", LabelManaged+"=true", LabelHost+"="+e.Name, LabelOwner+"="+d.cfg.Owner).Add("status", "running", "restarting", "created")
			res, err := e.api.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
			if err != nil {
				errs[i] = fmt.Errorf("list containers on docker host %s: %w", e.Name, err)
				return
			}
			for _, c := range res.Items {
				if c.Labels[LabelTask] != "" {
					continue
				}
				ins, err := e.api.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{})
				if errNotFound(err) {
					continue // removed since the list
				}
				if err != nil {
					errs[i] = fmt.Errorf("inspect %s on docker host %s: %w", shortID(c.ID), e.Name, err)
					return
				}
				mu.Lock()
				out = append(out, instanceOf(e, ins.Container))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func shortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
