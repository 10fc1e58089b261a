package deploy_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/deploy"
)

// deaths lets a test kill fake instances.
type deaths struct {
	mu   sync.Mutex
	dead map[string]bool
}

func (d *deaths) kill(id string) { d.mu.Lock(); d.dead[id] = true; d.mu.Unlock() }

func (d *deaths) exited(in core.Instance) (string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.dead[in.ID] {
		return "exit status 2", true
	}
	return "", false
}

func eventTypes(t *testing.T, r *rig) []core.EventType {
	t.Helper()
	es, _ := r.svc.Events(context.Background(), "hello", 0, 1000)
	var out []core.EventType
	for _, e := range es {
		if strings.HasPrefix(string(e.Type), "instance.") {
			out = append(out, e.Type)
		}
	}
	return out
}

// A live instance that dies is replaced, the proxy routed to the new one,
// and the environment reported degraded until then.
func TestDeadLiveInstanceIsReplaced(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	d := &deaths{dead: map[string]bool{}}
	r.driver.ExitedFn = d.exited
	r.start()
	r.deployAndWait("staging", "c1", core.StateSucceeded) // 2 instances on blue
	victim := r.state("staging").Slots[core.Blue].Instances[0]
	d.kill(victim.ID)

	st, _ := r.svc.Status(context.Background(), "hello")
	if !strings.Contains(st[0].Degraded, victim.ID) || !strings.Contains(st[0].Degraded, "exit status 2") {
		t.Fatalf("status of a degraded environment = %q", st[0].Degraded)
	}
	r.svc.Tick(context.Background())
	waitFor(t, "the repair", func() bool { return r.svc.QueueIdle("hello", "staging") })
	blue := r.state("staging").Slots[core.Blue]
	if len(blue.Instances) != 2 || slices.ContainsFunc(blue.Instances, func(in core.Instance) bool { return in.ID == victim.ID }) {
		t.Fatalf("live colour after the repair = %+v", blue.Instances)
	}
	if route := r.router.route("hello-staging"); slices.Contains(route.Targets, victim.Addr) || len(route.Targets) != 2 {
		t.Errorf("proxy still routes to the dead instance: %v", route.Targets)
	}
	if got := r.driver.runningReleases(); !slices.Equal(got, []int{1, 1}) {
		t.Errorf("running = %v", got)
	}
	if st, _ := r.svc.Status(context.Background(), "hello"); st[0].Degraded != "" {
		t.Errorf("still degraded after the repair: %q", st[0].Degraded)
	}
	if got := eventTypes(t, r); !slices.Equal(got, []core.EventType{core.EventInstanceExited, core.EventInstanceRestarted}) {
		t.Errorf("events = %v", got)
	}
}

// A restart that fails is retried after a backoff, not at every tick.
func TestRestartBacksOff(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	d := &deaths{dead: map[string]bool{}}
	r.driver.ExitedFn = d.exited
	r.start()
	r.deployAndWait("staging", "c1", core.StateSucceeded)
	d.kill(r.state("staging").Slots[core.Blue].Instances[0].ID)
	var mu sync.Mutex
	failing := true
	r.driver.StartFn = func(core.GroupSpec) error {
		mu.Lock()
		defer mu.Unlock()
		if failing {
			return errors.New("no free port")
		}
		return nil
	}
	tick := func() {
		r.svc.Tick(context.Background())
		waitFor(t, "the queue to be idle", func() bool { return r.svc.QueueIdle("hello", "staging") })
	}
	tick()
	tick() // within the backoff: no second attempt
	if got := eventTypes(t, r); !slices.Equal(got, []core.EventType{core.EventInstanceExited, core.EventInstanceRestartFailed}) {
		t.Fatalf("events after two ticks = %v, want one failed attempt", got)
	}
	mu.Lock()
	failing = false
	mu.Unlock()
	r.advance(2 * time.Second) // past the first backoff
	tick()
	if got := eventTypes(t, r); len(got) != 4 || got[3] != core.EventInstanceRestarted {
		t.Errorf("events after the backoff = %v, want a second attempt that restarts", got)
	}
}

// Deploying the live release of a degraded environment repairs it (a full
// blue/green deployment) instead of being a no-op.
func TestDeployOfLiveReleaseRepairs(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	d := &deaths{dead: map[string]bool{}}
	r.driver.ExitedFn = d.exited
	r.start()
	r.deployAndWait("staging", "c1", core.StateSucceeded)
	r.deployAndWait("staging", "c1", core.StateNoop) // whole: nothing to do
	for _, in := range r.state("staging").Slots[core.Blue].Instances {
		d.kill(in.ID)
	}
	got := r.deployAndWait("staging", "c1", core.StateSucceeded)
	st := r.state("staging")
	if st.Live != core.Green || st.LiveRelease() != got.Release {
		t.Errorf("after the repairing deploy: live %s v%d", st.Live, st.LiveRelease())
	}
	if s, _ := r.svc.Status(context.Background(), "hello"); s[0].Degraded != "" {
		t.Errorf("still degraded: %q", s[0].Degraded)
	}
}

// Secrets never leak in part: a log window that starts inside a secret,
// and a migration that prints 64 KiB before one, show no piece of it.
func TestSecretsRedactedAcrossCuts(t *testing.T) {
	t.Parallel()
	const secret = "s3cret-value-that-is-long-enough"
	r := newRig(t)
	ctx := context.Background()
	filler := strings.Repeat("x", 70<<10)
	r.driver.TaskFn = func(ctx context.Context, spec core.TaskSpec, out io.Writer) error {
		_, _ = io.WriteString(out, filler+"connecting with "+spec.Secrets["DB_PASSWORD"]+"\n")
		return nil
	}
	r.start()
	if _, err := r.svc.SetConfig(ctx, "hello", "staging", nil, map[string]string{"DB_PASSWORD": secret}); err != nil {
		t.Fatal(err)
	}
	r.deployAndWait("staging", "c1", core.StateSucceeded)
	es, _ := r.svc.Events(ctx, "hello", 0, 1000)
	sawOutput := false
	for _, e := range es {
		if e.Type == core.EventDeployOutput {
			sawOutput = true
			if strings.Contains(e.Message, secret[1:]) || strings.Contains(e.Message, secret[:len(secret)-1]) {
				t.Errorf("migration output leaks part of the secret: ...%s", e.Message[len(e.Message)-80:])
			}
			if !strings.Contains(e.Message, "[redacted]") {
				t.Errorf("migration output lost the redaction marker: ...%s", e.Message[len(e.Message)-80:])
			}
		}
	}
	if !sawOutput {
		t.Fatal("no migration output recorded")
	}
	// Every window that cuts the secret shows no part of it longer than the cut.
	r.driver.LogsFn = func(in core.Instance, maxBytes int64) string {
		text := "boot\nconnected with password=" + secret + "\nready\n"
		if maxBytes > 0 && int64(len(text)) > maxBytes {
			text = text[int64(len(text))-maxBytes:]
		}
		return text
	}
	for cut := int64(8); cut < 60; cut++ {
		logs, err := r.svc.Logs(ctx, deploy.LogsRequest{App: "hello", Env: "staging", Bytes: cut * 2}) // two instances
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range logs {
			for n := 4; n <= len(secret); n++ {
				if strings.Contains(l.Log, secret[len(secret)-n:]) && n > 3 {
					t.Fatalf("a %d-byte window shows %q of the secret: %q", cut, secret[len(secret)-n:], l.Log)
				}
			}
		}
	}
}
