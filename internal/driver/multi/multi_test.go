package multi

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/deploy"
)

// fake is a driver whose answers are function fields; it records what it
// was asked.
type fake struct {
	name   string
	calls  []string
	list   func() ([]core.Instance, error)
	exited bool
	pruned []string
}

func (f *fake) Start(_ context.Context, spec core.GroupSpec) ([]core.Instance, error) {
	f.calls = append(f.calls, "start "+spec.App)
	data := map[string]string{}
	if f.name != "process" {
		data[DataRuntime] = f.name
	}
	return []core.Instance{{ID: f.name + "-1", App: spec.App, Data: data}}, nil
}
func (f *fake) Stop(_ context.Context, ins []core.Instance, _ time.Duration) error {
	for _, in := range ins {
		f.calls = append(f.calls, "stop "+in.ID)
	}
	return nil
}
func (f *fake) List(context.Context) ([]core.Instance, error) { return f.list() }
func (f *fake) RunTask(_ context.Context, spec core.TaskSpec, _ io.Writer) error {
	f.calls = append(f.calls, "task "+spec.Name)
	return nil
}
func (f *fake) Logs(_ context.Context, in core.Instance, _ int64, w io.Writer) error {
	_, err := io.WriteString(w, f.name+" logs of "+in.ID)
	return err
}
func (f *fake) Probe(_ context.Context, in core.Instance, _ core.ProbeRequest) (core.ProbeResult, error) {
	return core.ProbeResult{Status: 200, Body: []byte(f.name)}, nil
}
func (f *fake) Exited(context.Context, core.Instance) (string, bool) { return "exited", f.exited }
func (f *fake) Prune(_ context.Context, app string, keep func(string) bool) (int, error) {
	for _, ref := range []string{"a", "b"} {
		if !keep(ref) {
			f.pruned = append(f.pruned, app+":"+ref)
		}
	}
	return len(f.pruned), nil
}

func TestRoutesByRuntime(t *testing.T) {
	proc := &fake{name: "process", list: func() ([]core.Instance, error) { return []core.Instance{{ID: "p"}}, nil }}
	dock := &fake{name: "docker", list: func() ([]core.Instance, error) { return []core.Instance{{ID: "d"}}, nil }, exited: true}
	m, err := New("process", map[string]deploy.Driver{"process": proc, "docker": dock}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pi, _ := m.Start(ctx, core.GroupSpec{App: "old"})                                                         // no runtime: the default
	di, _ := m.Start(ctx, core.GroupSpec{App: "new", Runtime: core.RuntimeOptions{Kind: core.RuntimeDocker}}) // docker
	_ = m.RunTask(ctx, core.TaskSpec{Name: "migrate", Runtime: core.RuntimeOptions{Kind: core.RuntimeDocker}}, io.Discard)
	if err := m.Stop(ctx, append(pi, di...), time.Second); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(proc.calls, ","); got != "start old,stop process-1" {
		t.Errorf("process driver calls = %s", got)
	}
	if got := strings.Join(dock.calls, ","); got != "start new,task migrate,stop docker-1" {
		t.Errorf("docker driver calls = %s", got)
	}
	var b strings.Builder
	_ = m.Logs(ctx, di[0], 0, &b)
	if res, _ := m.Probe(ctx, pi[0], core.ProbeRequest{}); b.String() != "docker logs of docker-1" || string(res.Body) != "process" {
		t.Errorf("logs %q probe %q: instances not sent back to their driver", b.String(), res.Body)
	}
	if _, ex := m.Exited(ctx, pi[0]); ex {
		t.Error("process instance reported exited by the docker driver")
	}
	if _, ex := m.Exited(ctx, di[0]); !ex {
		t.Error("docker instance's exit not reported")
	}
	all, err := m.List(ctx)
	if err != nil || len(all) != 2 {
		t.Errorf("list = %+v, %v", all, err)
	}
	n, err := m.Prune(ctx, "app", func(ref string) bool { return ref == "a" })
	if err != nil || n != 2 || len(dock.pruned) != 1 || dock.pruned[0] != "app:b" || len(proc.pruned) != 1 {
		t.Errorf("prune = %d, %v; docker pruned %v, process %v (want app:b by each)", n, err, dock.pruned, proc.pruned)
	}

	// A runtime that cannot be reached: the others are still listed, and
	// its groups are refused with the reason.
	dock.list = func() ([]core.Instance, error) { return nil, errors.New("engine down") }
	if all, err := m.List(ctx); err != nil || len(all) != 1 {
		t.Errorf("list with docker down = %+v, %v; want the process instances", all, err)
	}
	m2, _ := New("process", map[string]deploy.Driver{"process": proc}, map[string]string{"docker": "no engine at unix:///x: connection refused"}, nil)
	if _, err := m2.Start(ctx, core.GroupSpec{Runtime: core.RuntimeOptions{Kind: "docker"}}); err == nil || !strings.Contains(err.Error(), "runtime docker is not available on this server: no engine at unix:///x") {
		t.Errorf("start on a missing runtime: %v", err)
	}
	if _, err := m2.Start(ctx, core.GroupSpec{Runtime: core.RuntimeOptions{Kind: "kubernetes"}}); err == nil || !strings.Contains(err.Error(), `(available: process)`) {
		t.Errorf("start on an unknown runtime: %v", err)
	}
	if _, err := New("docker", map[string]deploy.Driver{"process": proc}, nil, nil); err == nil {
		t.Error("a default runtime without a driver was accepted")
	}
}
