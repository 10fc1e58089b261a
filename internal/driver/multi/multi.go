// Package multi is a deploy.Driver over several runtime drivers: each
// group and task goes to the driver of the runtime its manifest names
// (core.GroupSpec.Runtime.Kind), and each instance back to the driver that
// started it (Instance.Data["runtime"]). One server thus runs process apps
// and docker apps side by side.
package multi

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/deploy"
)

// DataRuntime is the Instance.Data key that names the runtime of an
// instance. Instances without it are the default runtime's.
const DataRuntime = "runtime"

// Driver routes to one driver per runtime.
type Driver struct {
	def         string
	drivers     map[string]deploy.Driver
	unavailable map[string]string
	log         *slog.Logger
}

// New returns a driver over drivers (by runtime name); def is the runtime
// of groups that name none and of instances that carry no runtime.
// unavailable says, per runtime the server knows but cannot run, why
// (a Docker engine that cannot be reached), so a deploy says so.
func New(def string, drivers map[string]deploy.Driver, unavailable map[string]string, log *slog.Logger) (*Driver, error) {
	if drivers[def] == nil {
		return nil, fmt.Errorf("default runtime %q has no driver", def)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Driver{def: def, drivers: drivers, unavailable: unavailable, log: log}, nil
}

// Runtime returns the driver of a runtime, or an error that says why there
// is none.
func (m *Driver) Runtime(kind string) (deploy.Driver, error) {
	kind = cmp.Or(kind, m.def)
	if d := m.drivers[kind]; d != nil {
		return d, nil
	}
	if why := m.unavailable[kind]; why != "" {
		return nil, fmt.Errorf("runtime %s is not available on this server: %s", kind, why)
	}
	return nil, fmt.Errorf("runtime %q is not available on this server (available: %s)", kind, strings.Join(m.names(), ", "))
}

func (m *Driver) names() []string {
	var out []string
	for k := range m.drivers {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func (m *Driver) of(in core.Instance) (deploy.Driver, error) {
	return m.Runtime(in.Data[DataRuntime])
}

// Start starts spec on its runtime's driver.
func (m *Driver) Start(ctx context.Context, spec core.GroupSpec) ([]core.Instance, error) {
	d, err := m.Runtime(spec.Runtime.Kind)
	if err != nil {
		return nil, err
	}
	return d.Start(ctx, spec)
}

// Stop stops each instance on the driver that started it.
func (m *Driver) Stop(ctx context.Context, instances []core.Instance, grace time.Duration) error {
	groups := map[string][]core.Instance{}
	for _, in := range instances {
		k := cmp.Or(in.Data[DataRuntime], m.def)
		groups[k] = append(groups[k], in)
	}
	var errs []error
	for k, ins := range groups {
		d, err := m.Runtime(k)
		if err == nil {
			err = d.Stop(ctx, ins, grace)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// List returns the instances of every runtime that answers. A runtime
// that cannot be reached is logged and left out: its instances are then
// neither listed nor taken for orphans.
func (m *Driver) List(ctx context.Context) ([]core.Instance, error) {
	var out []core.Instance
	var errs []error
	for _, k := range m.names() {
		ins, err := m.drivers[k].List(ctx)
		if err != nil {
			m.log.Warn("list instances", "runtime", k, "err", err)
			errs = append(errs, fmt.Errorf("%s: %w", k, err))
			continue
		}
		out = append(out, ins...)
	}
	if len(errs) == len(m.drivers) {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// RunTask runs spec on its runtime's driver.
func (m *Driver) RunTask(ctx context.Context, spec core.TaskSpec, out io.Writer) error {
	d, err := m.Runtime(spec.Runtime.Kind)
	if err != nil {
		return err
	}
	return d.RunTask(ctx, spec, out)
}

// Logs reads an instance's logs from its driver.
func (m *Driver) Logs(ctx context.Context, in core.Instance, maxBytes int64, w io.Writer) error {
	d, err := m.of(in)
	if err != nil {
		return err
	}
	return d.Logs(ctx, in, maxBytes, w)
}

// Probe probes an instance through its driver.
func (m *Driver) Probe(ctx context.Context, in core.Instance, req core.ProbeRequest) (core.ProbeResult, error) {
	d, err := m.of(in)
	if err != nil {
		return core.ProbeResult{}, err
	}
	return d.Probe(ctx, in, req)
}

// Exited asks an instance's driver. An instance of a runtime this server
// cannot reach is not reported exited: nothing is known of it.
func (m *Driver) Exited(ctx context.Context, in core.Instance) (string, bool) {
	d, err := m.of(in)
	if err != nil {
		return "", false
	}
	return d.Exited(ctx, in)
}

// Prune asks every runtime that keeps leftovers (deploy.Pruner) to collect
// those of app's artifacts that need not stay.
func (m *Driver) Prune(ctx context.Context, app string, keep func(ref string) bool) (int, error) {
	total := 0
	var errs []error
	for _, k := range m.names() {
		if p, ok := m.drivers[k].(deploy.Pruner); ok {
			n, err := p.Prune(ctx, app, keep)
			total += n
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", k, err))
			}
		}
	}
	return total, errors.Join(errs...)
}

// CheckPlacement asks the driver of opts' runtime, when it places
// instances on named hosts (deploy.PlacementChecker); a runtime this
// server cannot run is refused with the reason.
func (m *Driver) CheckPlacement(ctx context.Context, opts core.RuntimeOptions) error {
	d, err := m.Runtime(opts.Kind)
	if err != nil {
		return err
	}
	if c, ok := d.(deploy.PlacementChecker); ok {
		return c.CheckPlacement(ctx, opts)
	}
	return nil
}
