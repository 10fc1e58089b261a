package server_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cutover/cutover/examples"
	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/gitx"
	"github.com/cutover/cutover/internal/notify"
	"github.com/cutover/cutover/internal/testutil"
)

// notifyReceiver counts deliveries per X-Cutover-Delivery and, while hold
// is set, keeps the first delivery of an event unanswered (the server
// dies with it in flight).
type notifyReceiver struct {
	mu      sync.Mutex
	acked   map[string]int // delivery id -> acknowledged deliveries
	seen    map[string]int // delivery id -> requests
	holding chan struct{}  // closed when a delivery is being held
	hold    bool
	release chan struct{}
}

func (r *notifyReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	_, _ = io.Copy(io.Discard, req.Body)
	id := req.Header.Get(notify.DeliveryHeader)
	r.mu.Lock()
	r.seen[id]++
	hold := r.hold
	if hold {
		r.hold = false
		close(r.holding)
	}
	r.mu.Unlock()
	if hold {
		<-r.release // never acknowledged: the server is killed meanwhile
		http.Error(w, "gone", http.StatusServiceUnavailable)
		return
	}
	r.mu.Lock()
	r.acked[id]++
	r.mu.Unlock()
}

func (r *notifyReceiver) counts(id string) (seen, acked int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen[id], r.acked[id]
}

// TestServerKilledBetweenEventAndDelivery: a server killed (SIGKILL) with a
// notification in flight delivers it after the restart; one killed right
// after it recorded a receiver's acknowledgement does not send that event
// again.
func TestServerKilledBetweenEventAndDelivery(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and kills real servers")
	}
	t.Parallel()
	bin := cutoverBin(t)
	dir := t.TempDir()
	repo, data := filepath.Join(dir, "repo"), filepath.Join(dir, "data")
	if err := examples.WriteHello(repo, examples.HelloOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := gitx.Init(context.Background(), repo); err != nil {
		t.Fatal(err)
	}
	if _, err := gitx.CommitAll(context.Background(), repo, "v1"); err != nil {
		t.Fatal(err)
	}
	recv := &notifyReceiver{acked: map[string]int{}, seen: map[string]int{}, holding: make(chan struct{}), hold: true, release: make(chan struct{})}
	hs := httptest.NewServer(recv)
	defer hs.Close()
	defer close(recv.release)

	p := startServer(t, bin, data, "--allow-private-notify")
	if code := p.call("POST", "/api/v1/apps", map[string]string{"name": "hello", "repo": repo}, nil); code/100 != 2 {
		t.Fatalf("add app: %d\n%s", code, p.log.String())
	}
	var sub core.Subscription
	if code := p.call("POST", "/api/v1/apps/hello/notify", map[string]any{"events": []string{"env.locked", "env.unlocked"}, "channel": "webhook", "url": hs.URL}, &sub); code != http.StatusCreated {
		t.Fatalf("subscribe: %d\n%s", code, p.log.String())
	}
	events := func(p *proc, typ core.EventType) []core.Event {
		var es []core.Event
		p.call("GET", "/api/v1/events?app=hello", nil, &es)
		var out []core.Event
		for _, e := range es {
			if e.Type == typ {
				out = append(out, e)
			}
		}
		return out
	}
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		defer func() {
			if t.Failed() {
				t.Logf("server log:\n%s", p.log.String())
			}
		}()
		testutil.WaitFor(t, what, 30*time.Second, cond)
	}

	// 1. The lock's notification is in flight when the server dies.
	if code := p.call("PUT", "/api/v1/apps/hello/envs/production/lock", map[string]string{"reason": "incident"}, nil); code/100 != 2 {
		t.Fatalf("lock: %d", code)
	}
	<-recv.holding
	locked := events(p, core.EventEnvLocked)
	if len(locked) != 1 {
		t.Fatalf("env.locked events = %+v", locked)
	}
	lockID := sub.ID + ":" + strconv.FormatInt(locked[0].ID, 10)
	p.kill()
	p = startServer(t, bin, data, "--allow-private-notify")
	waitUntil("the lock's notification after the restart", func() bool { _, acked := recv.counts(lockID); return acked == 1 })

	// 2. The unlock's notification is acknowledged, then the server dies
	// at once; after the restart it is not sent again. The next lock's
	// notification is the barrier: notifications go out in event order.
	if code := p.call("DELETE", "/api/v1/apps/hello/envs/production/lock", nil, nil); code/100 != 2 {
		t.Fatalf("unlock: %d", code)
	}
	unlocked := events(p, core.EventEnvUnlocked)
	if len(unlocked) != 1 {
		t.Fatalf("env.unlocked events = %+v", unlocked)
	}
	unlockID := sub.ID + ":" + strconv.FormatInt(unlocked[0].ID, 10)
	// Killed once the server recorded the receiver's acknowledgement (a
	// kill between the answer and the record sends it again: at least
	// once, with the same X-Cutover-Delivery for the receiver to drop).
	waitUntil("the unlock's acknowledgement in the delivery log", func() bool {
		var log []core.Delivery
		p.call("GET", "/api/v1/apps/hello/notify/log", nil, &log)
		for _, d := range log {
			if d.EventID == unlocked[0].ID && d.Status == core.DeliveryOK {
				return true
			}
		}
		return false
	})
	p.kill()
	p = startServer(t, bin, data, "--allow-private-notify")
	if code := p.call("PUT", "/api/v1/apps/hello/envs/production/lock", map[string]string{"reason": "again"}, nil); code/100 != 2 {
		t.Fatalf("lock: %d", code)
	}
	waitUntil("the second lock's notification", func() bool {
		ls := events(p, core.EventEnvLocked)
		if len(ls) != 2 {
			return false
		}
		_, acked := recv.counts(sub.ID + ":" + strconv.FormatInt(ls[1].ID, 10))
		return acked == 1
	})
	if seen, acked := recv.counts(unlockID); seen != 1 || acked != 1 {
		t.Errorf("the acknowledged unlock was sent %d times (acknowledged %d), want once", seen, acked)
	}
	if seen, acked := recv.counts(lockID); seen != 2 || acked != 1 {
		t.Errorf("the lock in flight at the kill: sent %d times, acknowledged %d; want 2 and 1", seen, acked)
	}
	var log []core.Delivery
	p.call("GET", "/api/v1/apps/hello/notify/log", nil, &log)
	if len(log) < 3 || strings.Contains(p.log.String(), sub.Secret) {
		t.Errorf("delivery log = %+v (or the secret is in the server log)", log)
	}
}
