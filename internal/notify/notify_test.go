package notify

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/notify/notifytest"
	"github.com/cutover/cutover/internal/secret"
	"github.com/cutover/cutover/internal/store/sqlite"
	"github.com/cutover/cutover/internal/testutil"
)

var bg = context.Background()

func openStore(t *testing.T) *sqlite.Store {
	t.Helper()
	dir := t.TempDir()
	box, err := secret.LoadOrCreateKey(filepath.Join(dir, "key"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := sqlite.Open(bg, filepath.Join(dir, "db"), box)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.CreateApp(bg, core.App{Name: "hello", Repo: "/repo", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	return s
}

// receiver is a local HTTP receiver that records what it accepted and
// fails the first `fail` requests.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	fail     int
	requests int
	got      []received
}

type received struct {
	body             []byte
	signature, stamp string
	delivery         string
}

func newReceiver(t *testing.T, fail int) *receiver {
	r := &receiver{fail: fail}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.requests++
		if r.requests <= r.fail {
			http.Error(w, "not now", http.StatusServiceUnavailable)
			return
		}
		r.got = append(r.got, received{body, req.Header.Get(SignatureHeader), req.Header.Get(TimestampHeader), req.Header.Get(DeliveryHeader)})
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) accepted() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

func subscribe(t *testing.T, s *sqlite.Store, ch core.NotifyChannel, url string, events ...string) core.Subscription {
	t.Helper()
	sub := core.Subscription{ID: NewID(), App: "hello", Events: events, Channel: ch, URL: url, Secret: NewSecret(), CreatedAt: time.Now()}
	if err := s.CreateSubscription(bg, sub); err != nil {
		t.Fatal(err)
	}
	return sub
}

// rollbackEvent records a rollback deployment of hello/production to
// release 5 that succeeded, and its outcome event.
func rollbackEvent(t *testing.T, s *sqlite.Store) core.Event {
	t.Helper()
	d, err := s.CreateDeployment(bg, core.Deployment{App: "hello", Env: "production", Kind: core.KindRollback, Release: 5,
		State: core.StateSucceeded, Step: core.StepDone, Reason: "error rate 12%", RequestedBy: "ann", CreatedAt: time.Now(), UpdatedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	e, err := s.AppendEvent(bg, core.Event{App: "hello", Env: "production", DeploymentID: d.ID, Time: time.Now(), Type: core.EventDeploySucceeded,
		Release: 5, State: core.StateSucceeded, Reason: "error rate 12%", Actor: "ann", Message: "rolled back"})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func fastConfig(s Store) Config {
	return Config{Store: s, AllowPrivate: true, Poll: 10 * time.Millisecond, RetryFirst: time.Millisecond, RetryMax: 5 * time.Millisecond, Timeout: 5 * time.Second}
}

// waitFor polls cond; it fails the test after 10s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.WaitFor(t, what, 10*time.Second, cond)
}

// settled reports whether sub's delivery of event e is done (acknowledged
// or given up on).
func settled(t *testing.T, s *sqlite.Store, sub string, e int64) bool {
	_, done, err := s.DeliveryState(bg, sub, e)
	if err != nil {
		t.Fatal(err)
	}
	return done
}

func cursor(t *testing.T, s *sqlite.Store) int64 {
	c, err := s.GetCursor(bg, ConsumerName)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNotifier_Rollback_ReachesWebhookSlackAndEmailOnce(t *testing.T) {
	s := openStore(t)
	hook, slack, other := newReceiver(t, 0), newReceiver(t, 0), newReceiver(t, 0)
	relay := notifytest.Start(t, notifytest.Options{})
	hs := subscribe(t, s, core.ChannelWebhook, hook.URL, KindRollback)
	ss := subscribe(t, s, core.ChannelSlack, slack.URL, KindRollback, KindDeployFailed)
	subscribe(t, s, core.ChannelEmail, "mailto:ops@example.com", KindRollback)
	subscribe(t, s, core.ChannelWebhook, other.URL, KindApproval) // not named: gets nothing
	e := rollbackEvent(t, s)
	cfg := fastConfig(s)
	cfg.SMTP = relaySMTP(relay)
	stop := New(cfg).Start()
	defer stop()
	waitFor(t, "the cursor to pass the rollback", func() bool { return cursor(t, s) >= e.ID })
	stop()

	got := hook.accepted()
	if len(got) != 1 {
		t.Fatalf("webhook got %d deliveries, want 1", len(got))
	}
	if !Verify(hs.Secret, got[0].stamp, got[0].body, got[0].signature) {
		t.Errorf("webhook signature %q does not verify", got[0].signature)
	}
	var p struct {
		core.Event
		Kind string `json:"kind"`
	}
	if err := json.Unmarshal(got[0].body, &p); err != nil || p.Kind != KindRollback || p.ID != e.ID || p.Env != "production" || p.Release != 5 {
		t.Errorf("webhook body = %s, %v", got[0].body, err)
	}
	sl := slack.accepted()
	if len(sl) != 1 {
		t.Fatalf("slack got %d deliveries, want 1", len(sl))
	}
	if !Verify(ss.Secret, sl[0].stamp, sl[0].body, sl[0].signature) {
		t.Error("slack signature does not verify")
	}
	var m slackMessage
	if err := json.Unmarshal(sl[0].body, &m); err != nil || len(m.Blocks) == 0 {
		t.Fatalf("slack body = %s, %v", sl[0].body, err)
	}
	if want := "hello: production rolled back to #5 (error rate 12%)"; m.Text != want {
		t.Errorf("slack text = %q, want %q", m.Text, want)
	}
	if n := len(other.accepted()); n != 0 {
		t.Errorf("a subscription to approvals got %d deliveries", n)
	}
	if mails := relay.Accepted(); len(mails) != 1 || strings.Join(mails[0].To, ",") != "ops@example.com" {
		t.Errorf("the relay accepted %d mails, want 1 to ops@example.com", len(mails))
	}
}

func TestNotifier_NewSubscriptionSkipsOlderEvents(t *testing.T) {
	s := openStore(t)
	e := rollbackEvent(t, s)
	r := newReceiver(t, 0)
	subscribe(t, s, core.ChannelWebhook, r.URL, KindRollback) // after the event
	stop := New(fastConfig(s)).Start()
	defer stop()
	waitFor(t, "the cursor to pass the rollback", func() bool { return cursor(t, s) >= e.ID })
	stop()
	if n := len(r.accepted()); n != 0 {
		t.Errorf("a subscription made after the event got it %d times", n)
	}
}

func TestNotifier_RetriesUntilAcknowledged(t *testing.T) {
	s := openStore(t)
	r := newReceiver(t, 3)
	sub := subscribe(t, s, core.ChannelWebhook, r.URL, KindRollback)
	e := rollbackEvent(t, s)
	stop := New(fastConfig(s)).Start()
	defer stop()
	waitFor(t, "the delivery to be acknowledged", func() bool { return settled(t, s, sub.ID, e.ID) })
	stop()
	if got := r.accepted(); len(got) != 1 || got[0].delivery != sub.ID+":"+strconv.FormatInt(e.ID, 10) {
		t.Fatalf("accepted = %+v, want one delivery after three failures", got)
	}
	log, err := s.ListDeliveries(bg, "hello", 10)
	if err != nil || len(log) != 4 || log[0].Status != core.DeliveryOK || log[0].Attempt != 4 || log[1].Status != core.DeliveryFailed {
		t.Errorf("delivery log = %+v, %v", log, err)
	}
}

func TestNotifier_GivesUpAfterAttempts(t *testing.T) {
	s := openStore(t)
	r := newReceiver(t, 1000)
	sub := subscribe(t, s, core.ChannelWebhook, r.URL, KindRollback)
	e := rollbackEvent(t, s)
	cfg := fastConfig(s)
	cfg.Attempts = 3
	stop := New(cfg).Start()
	defer stop()
	waitFor(t, "the notifier to give up", func() bool { return settled(t, s, sub.ID, e.ID) })
	stop()
	log, _ := s.ListDeliveries(bg, "hello", 10)
	if len(log) != 3 || log[0].Status != core.DeliveryGaveUp {
		t.Errorf("delivery log = %+v", log)
	}
}

// TestNotifier_GivesUpAfterRetryFor: the retry window, counted from the
// first attempt, ends the retries; without it they would go on (the
// attempts cap is far away).
func TestNotifier_GivesUpAfterRetryFor(t *testing.T) {
	s := openStore(t)
	r := newReceiver(t, 1<<30)
	sub := subscribe(t, s, core.ChannelWebhook, r.URL, KindRollback)
	e := rollbackEvent(t, s)
	cfg := fastConfig(s)
	cfg.RetryFirst, cfg.RetryMax, cfg.RetryFor = 10*time.Millisecond, 10*time.Millisecond, 200*time.Millisecond
	stop := New(cfg).Start()
	defer stop()
	waitFor(t, "the notifier to give up", func() bool { return settled(t, s, sub.ID, e.ID) })
	stop()
	log, _ := s.ListDeliveries(bg, "hello", 1000)
	if last := log[0]; last.Status != core.DeliveryGaveUp || len(log) < 2 {
		t.Errorf("gave up after %d attempts: last %+v; want retries, then gave_up without an attempts cap", len(log), last)
	}
}

// TestNotifier_DeadReceiverHoldsNobodyBack: while one subscription's
// receiver keeps failing, another's gets every event as it comes; the
// cursor does not wait for retries.
func TestNotifier_DeadReceiverHoldsNobodyBack(t *testing.T) {
	s := openStore(t)
	dead, live := newReceiver(t, 1<<30), newReceiver(t, 0)
	subscribe(t, s, core.ChannelWebhook, dead.URL, KindRollback)
	subscribe(t, s, core.ChannelWebhook, live.URL, KindRollback)
	cfg := fastConfig(s)
	cfg.RetryFirst, cfg.RetryMax = time.Hour, time.Hour // the dead one's next retry is far away
	stop := New(cfg).Start()
	defer stop()
	var last core.Event
	for range 5 {
		last = rollbackEvent(t, s)
	}
	waitFor(t, "five events at the live receiver", func() bool { return len(live.accepted()) == 5 })
	waitFor(t, "the cursor to pass the last event", func() bool { return cursor(t, s) >= last.ID })
	stop()
	dead.mu.Lock()
	defer dead.mu.Unlock()
	if dead.requests != 5 {
		t.Errorf("the dead receiver got %d requests, want one first attempt per event", dead.requests)
	}
}

func TestNotifier_Restart_DoesNotResendAcknowledged(t *testing.T) {
	s := openStore(t)
	good := newReceiver(t, 0)
	// bad fails until the first notifier is stopped: its delivery stays
	// pending in the log.
	bad := newReceiver(t, 1<<30)
	subscribe(t, s, core.ChannelWebhook, good.URL, KindRollback)
	badSub := subscribe(t, s, core.ChannelWebhook, bad.URL, KindRollback)
	e := rollbackEvent(t, s)
	cfg := fastConfig(s)
	cfg.Attempts = 1000
	stop := New(cfg).Start()
	waitFor(t, "the good receiver", func() bool { return len(good.accepted()) == 1 })
	waitFor(t, "a failed attempt", func() bool { bad.mu.Lock(); defer bad.mu.Unlock(); return bad.requests > 1 })
	stop()
	if settled(t, s, badSub.ID, e.ID) {
		t.Fatal("the failing delivery is settled before the receiver ever answered")
	}
	bad.mu.Lock()
	bad.fail = 0
	bad.mu.Unlock()

	stop = New(cfg).Start() // a restarted server: a new consumer on the same store
	defer stop()
	waitFor(t, "the pending delivery after the restart", func() bool { return settled(t, s, badSub.ID, e.ID) })
	stop()
	if n := len(good.accepted()); n != 1 {
		t.Errorf("the receiver that acknowledged got the event %d times, want 1", n)
	}
	if n := len(bad.accepted()); n != 1 {
		t.Errorf("the receiver that failed got it %d times after the restart, want 1", n)
	}
	// Attempt numbers go on across the restart: none was overwritten.
	log, _ := s.ListDeliveries(bg, "hello", 1000)
	seen := map[string]bool{}
	for _, d := range log {
		k := d.Subscription + "/" + strconv.Itoa(d.Attempt)
		if seen[k] {
			t.Fatalf("attempt %s recorded twice", k)
		}
		seen[k] = true
	}
	if log[0].Status != core.DeliveryOK || log[0].Attempt < 2 {
		t.Errorf("last attempt = %+v, want ok after the earlier failures", log[0])
	}
}

func TestNotifier_Test(t *testing.T) {
	s := openStore(t)
	r := newReceiver(t, 0)
	sub := subscribe(t, s, core.ChannelSlack, r.URL, KindRollback)
	d, err := New(fastConfig(s)).Test(bg, sub.ID, "ann")
	if err != nil || d.Status != core.DeliveryOK || len(r.accepted()) != 1 {
		t.Fatalf("test = %+v, %v; accepted %d", d, err, len(r.accepted()))
	}
}

func TestNotifier_RefusesPrivateReceiverAtDelivery(t *testing.T) {
	s := openStore(t)
	r := newReceiver(t, 0)
	sub := subscribe(t, s, core.ChannelWebhook, r.URL, KindRollback) // stored by a server that allowed it
	e := rollbackEvent(t, s)
	cfg := fastConfig(s)
	cfg.AllowPrivate = false
	stop := New(cfg).Start()
	defer stop()
	waitFor(t, "the delivery to settle", func() bool { return settled(t, s, sub.ID, e.ID) })
	stop()
	if n := len(r.accepted()); n != 0 {
		t.Errorf("a loopback receiver got %d deliveries", n)
	}
	log, _ := s.ListDeliveries(bg, "hello", 10)
	// Refused at once, not retried: waiting does not make it allowed.
	if len(log) != 1 || log[0].Status != core.DeliveryGaveUp || !strings.Contains(log[0].Error, "not allowed") {
		t.Errorf("delivery log = %+v", log)
	}
}

func TestGuard(t *testing.T) {
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://127.0.0.2:1/", http.StatusFound)
	}))
	defer redirect.Close()
	cases := []struct {
		name, url string
		create    bool // refused when the subscription is created
	}{
		{"loopback", "http://127.0.0.1:8080/hook", true},
		{"loopback v6", "http://[::1]/hook", true},
		{"private", "https://10.1.2.3/hook", true},
		{"private 172.16/12", "https://172.20.0.1/hook", true},
		{"private 192.168/16", "https://192.168.1.1/hook", true},
		{"cloud metadata", "http://169.254.169.254/latest/meta-data/", true},
		{"link-local v6", "http://[fe80::1]/", true},
		{"unique local v6", "http://[fd00::1]/", true},
		{"unspecified", "http://0.0.0.0/", true},
		{"multicast", "http://224.0.0.1/", true},
		{"name of loopback", "http://localhost:9/hook", true},
		{"redirect to loopback", "", false},
	}
	g := Guard{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.create {
				if err := g.CheckURL(bg, c.url); !errors.Is(err, ErrForbiddenAddress) {
					t.Errorf("CheckURL(%s) = %v, want ErrForbiddenAddress", c.url, err)
				}
				if err := (Guard{AllowPrivate: true}).CheckURL(bg, c.url); err != nil {
					t.Errorf("allowed: CheckURL(%s) = %v", c.url, err)
				}
				// At delivery, the dialler refuses the address it resolved.
				req, _ := http.NewRequest(http.MethodPost, c.url, nil)
				if _, err := g.Client(time.Second).Do(req); !errors.Is(err, ErrForbiddenAddress) {
					t.Errorf("post to %s = %v, want ErrForbiddenAddress", c.url, err)
				}
				return
			}
			// The redirector itself is on loopback (127.0.0.1): a guard that
			// blocks only the redirect's target (127.0.0.2) shows that the
			// client checks every hop.
			only := Guard{blocked: func(ip netip.Addr) bool { return ip == netip.MustParseAddr("127.0.0.2") }}
			if _, err := only.Client(time.Second).Get(redirect.URL); !errors.Is(err, ErrForbiddenAddress) {
				t.Errorf("redirect to a blocked address = %v, want ErrForbiddenAddress", err)
			}
			// And the default guard refuses a redirect to loopback.
			if err := g.CheckURL(bg, "http://127.0.0.2:1/"); !errors.Is(err, ErrForbiddenAddress) {
				t.Errorf("redirect target = %v", err)
			}
		})
	}
	for _, ok := range []string{"https://93.184.215.14/hook", "https://[2606:4700::1]/x"} {
		if err := g.CheckURL(bg, ok); err != nil {
			t.Errorf("CheckURL(%s) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"ftp://example.com/", "http:///nohost", "http://user:pw@example.com/"} {
		if err := g.CheckURL(bg, bad); err == nil {
			t.Errorf("CheckURL(%s) accepted", bad)
		}
	}
}

func TestClassify(t *testing.T) {
	cases := []struct {
		e    core.Event
		dk   core.DeploymentKind
		want []string
	}{
		{core.Event{Type: core.EventDeployStep, Step: core.StepLock}, "", []string{KindDeployStarted}},
		{core.Event{Type: core.EventDeployStep, Step: core.StepHealth}, "", nil},
		{core.Event{Type: core.EventDeploySucceeded}, core.KindDeploy, []string{KindDeploySucceeded}},
		{core.Event{Type: core.EventDeploySucceeded}, core.KindRollback, []string{KindRollback}},
		{core.Event{Type: core.EventDeployFailed}, core.KindDeploy, []string{KindDeployFailed}},
		{core.Event{Type: core.EventDeployRolledBack}, core.KindDeploy, []string{KindDeployRolledBack}},
		{core.Event{Type: core.EventDeployRolledBack}, core.KindRollback, []string{KindDeployRolledBack, KindRollback}},
		{core.Event{Type: core.EventBuildFailed}, "", []string{KindBuildFailed}},
		{core.Event{Type: core.EventDeployOverride}, "", []string{KindOverride}},
		{core.Event{Type: core.EventEnvLocked}, "", []string{KindEnvLocked}},
		{core.Event{Type: core.EventEnvUnlocked}, "", []string{KindEnvUnlocked}},
		{core.Event{Type: core.EventApproved}, "", []string{KindApproval}},
		{core.Event{Type: core.EventApprovalAsked}, "", []string{KindApprovalAsked}},
		{core.Event{Type: core.EventBuildFixed}, "", []string{KindBuildFixed}},
		{core.Event{Type: core.EventBuildFinished}, "", nil},
		{core.Event{Type: core.EventConfigSet}, "", nil},
	}
	for _, c := range cases {
		if got := Classify(c.e, c.dk); !slices.Equal(got, c.want) {
			t.Errorf("Classify(%s/%s, %s) = %v, want %v", c.e.Type, c.e.Step, c.dk, got, c.want)
		}
	}
	if _, err := ParseKinds([]string{"rollback,nope"}); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("ParseKinds(nope) = %v", err)
	}
	if got, _ := ParseKinds([]string{"all"}); len(got) != len(kinds) {
		t.Errorf("ParseKinds(all) = %v", got)
	}
}
