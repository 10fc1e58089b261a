// Package drivertest is the conformance suite every runtime driver runs
// (process today; Docker and Kubernetes next), so the deploy machine can
// rely on the same behaviour from each.
package drivertest

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/deploy"
	"github.com/cutover/cutover/internal/testutil"
)

// Suite describes the driver under test and the programs it runs.
type Suite struct {
	// New returns a fresh driver.
	New func(t *testing.T) deploy.Driver
	// Spec returns a group spec whose instances answer GET / with a body
	// containing Want, honour PORT (or the driver's own addressing) and
	// print something to their log when they start.
	Spec func(count int) core.GroupSpec
	Want string
	// Bad is a spec that cannot start.
	Bad core.GroupSpec
	// Exits is a spec whose instances start and then exit on their own.
	Exits core.GroupSpec
	// Task runs to completion printing TaskOutput; FailingTask exits non-zero.
	Task, FailingTask core.TaskSpec
	TaskOutput        string
}

// Run checks a driver against the deploy machine's expectations.
func Run(t *testing.T, su Suite) {
	newDriver, spec, want, bad := su.New, su.Spec, su.Want, su.Bad
	ctx := context.Background()
	t.Run("start, list, stop", func(t *testing.T) {
		d := newDriver(t)
		insts, err := d.Start(ctx, spec(2))
		if err != nil {
			t.Fatal(err)
		}
		if len(insts) != 2 || insts[0].Addr == insts[1].Addr || insts[0].ID == insts[1].ID {
			t.Fatalf("instances = %+v", insts)
		}
		for _, in := range insts {
			if body := waitBody(t, in.Addr); !strings.Contains(body, want) {
				t.Errorf("%s answered %q, want %q", in.Addr, body, want)
			}
			if in.Colour == "" || in.Release == 0 || in.App == "" {
				t.Errorf("instance lacks its identity: %+v", in)
			}
		}
		listed, err := d.List(ctx)
		if err != nil || !contains(listed, insts) {
			t.Fatalf("list = %+v, %v", listed, err)
		}
		if err := d.Stop(ctx, insts, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		for _, in := range insts {
			if reachable(in.Addr) {
				t.Errorf("%s still answers after stop", in.Addr)
			}
		}
		if listed, _ := d.List(ctx); contains(listed, insts[:1]) {
			t.Errorf("stopped instance still listed: %+v", listed)
		}
		if err := d.Stop(ctx, insts, time.Second); err != nil {
			t.Errorf("stopping twice: %v", err)
		}
	})
	t.Run("a failed start leaves nothing", func(t *testing.T) {
		d := newDriver(t)
		before, _ := d.List(ctx)
		if _, err := d.Start(ctx, bad); err == nil {
			t.Fatal("a spec that cannot start was started")
		}
		after, _ := d.List(ctx)
		if len(after) != len(before) {
			t.Errorf("instances left after a failed start: %+v", after)
		}
	})
	t.Run("probe reaches an instance and bounds the body", func(t *testing.T) {
		d := newDriver(t)
		insts, err := d.Start(ctx, spec(1))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = d.Stop(ctx, insts, 5*time.Second) })
		in := insts[0]
		res := waitProbe(t, d, in, core.ProbeRequest{Method: http.MethodGet, Path: "/", Timeout: 2 * time.Second})
		if res.Status != http.StatusOK || !strings.Contains(string(res.Body), want) {
			t.Errorf("probe = %d %q, want 200 containing %q", res.Status, res.Body, want)
		}
		res, err = d.Probe(ctx, in, core.ProbeRequest{Method: http.MethodGet, Path: "/", Timeout: 2 * time.Second, MaxBody: 3})
		if err != nil || len(res.Body) != 3 {
			t.Errorf("probe with MaxBody 3 = %q, %v", res.Body, err)
		}
		if res, err := d.Probe(ctx, in, core.ProbeRequest{Method: http.MethodGet, Path: "/no-such-page", Timeout: 2 * time.Second}); err != nil || res.Status != http.StatusNotFound {
			t.Errorf("probe of a missing page = %d, %v; want 404", res.Status, err)
		}
	})
	t.Run("logs outlive the instance", func(t *testing.T) {
		d := newDriver(t)
		insts, err := d.Start(ctx, spec(1))
		if err != nil {
			t.Fatal(err)
		}
		waitProbe(t, d, insts[0], core.ProbeRequest{Method: http.MethodGet, Path: "/", Timeout: 2 * time.Second})
		if err := d.Stop(ctx, insts, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		var all, tail strings.Builder
		if err := d.Logs(ctx, insts[0], 0, &all); err != nil || all.Len() == 0 {
			t.Fatalf("logs of a stopped instance = %q, %v", all.String(), err)
		}
		if err := d.Logs(ctx, insts[0], 5, &tail); err != nil || tail.Len() != 5 || !strings.HasSuffix(all.String(), tail.String()) {
			t.Errorf("last 5 bytes = %q, %v (all: %q)", tail.String(), err, all.String())
		}
	})
	t.Run("an instance that exits is reported", func(t *testing.T) {
		d := newDriver(t)
		insts, err := d.Start(ctx, su.Exits)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = d.Stop(ctx, insts, time.Second) })
		var status string
		testutil.WaitFor(t, "the driver to report the instance that exited", 15*time.Second, func() bool {
			var exited bool
			status, exited = d.Exited(ctx, insts[0])
			return exited
		})
		if status == "" {
			t.Error("exited without a status")
		}
	})
	t.Run("tasks run to completion and report failure", func(t *testing.T) {
		d := newDriver(t)
		var out strings.Builder
		if err := d.RunTask(ctx, su.Task, &out); err != nil || !strings.Contains(out.String(), su.TaskOutput) {
			t.Errorf("task = %q, %v; want output containing %q", out.String(), err, su.TaskOutput)
		}
		if err := d.RunTask(ctx, su.FailingTask, io.Discard); err == nil || !strings.Contains(err.Error(), "exit") {
			t.Errorf("failing task: err = %v, want one naming the exit status", err)
		}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := d.RunTask(cctx, su.Task, io.Discard); err == nil {
			t.Error("a task on a cancelled context ran")
		}
	})
}

func waitProbe(t *testing.T, d deploy.Driver, in core.Instance, req core.ProbeRequest) core.ProbeResult {
	t.Helper()
	var res core.ProbeResult
	testutil.WaitFor(t, in.ID+" to answer a probe", 15*time.Second, func() bool {
		var err error
		res, err = d.Probe(context.Background(), in, req)
		return err == nil
	})
	return res
}

func contains(list, want []core.Instance) bool {
	ids := map[string]bool{}
	for _, in := range list {
		ids[in.ID] = true
	}
	for _, in := range want {
		if !ids[in.ID] {
			return false
		}
	}
	return true
}

func waitBody(t *testing.T, addr string) string {
	t.Helper()
	var body string
	testutil.WaitFor(t, addr+" to answer GET /", 15*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/")
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		return true
	})
	return body
}

func reachable(addr string) bool {
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + addr + "/")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return true
}
