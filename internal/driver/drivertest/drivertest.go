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
)

// Run checks a driver. newDriver returns a fresh driver; spec returns a
// group spec whose instances answer GET / with a body containing want and
// honour PORT (or the driver's own addressing); bad returns a spec that
// cannot start.
func Run(t *testing.T, newDriver func(t *testing.T) deploy.Driver, spec func(count int) core.GroupSpec, want string, bad core.GroupSpec) {
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
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never answered: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
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
