// Package notify sends an app's events to the subscriptions that name
// them: signed JSON webhooks, Slack-compatible chat messages and email. It follows
// the event log as an outbox consumer, retries each subscription with
// backoff, records every attempt, and refuses receivers on the server's own
// network (Guard).
package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	cryptorand "crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/cutover/cutover/internal/core"
	"github.com/cutover/cutover/internal/outbox"
)

// Defaults of a Notifier.
const (
	ConsumerName       = "notify"  // the outbox cursor's name
	DefaultRetryFor    = time.Hour // how long a failing delivery is retried, from its first attempt
	DefaultRetryFirst  = time.Second
	DefaultRetryMax    = 5 * time.Minute
	DefaultTimeout     = 10 * time.Second // per attempt: dial, TLS, answer
	DefaultLogLimit    = 50               // delivery attempts `notify log` shows
	SignatureHeader    = "X-Cutover-Signature"
	TimestampHeader    = "X-Cutover-Timestamp"
	DeliveryHeader     = "X-Cutover-Delivery" // SUBSCRIPTION:EVENT, the same on every attempt (an idempotency key)
	maxRedirects       = 3
	maxErrorBody       = 512
	pendingBatch       = 100 // retries looked at per pass
	secretBytes        = 32
	subscriptionIDSize = 6
)

// Store is what the notifier reads and records.
type Store interface {
	outbox.Store
	GetDeployment(ctx context.Context, id int64) (core.Deployment, error)
	GetSubscription(ctx context.Context, id string) (core.Subscription, error)
	ListSubscriptions(ctx context.Context, app string) ([]core.Subscription, error)
	RecordDelivery(ctx context.Context, d core.Delivery) error
	DeliveryState(ctx context.Context, subscription string, eventID int64) (attempts int, done bool, err error)
	PendingDeliveries(ctx context.Context, limit int) ([]core.PendingDelivery, error)
	CreateSubscription(ctx context.Context, sub core.Subscription) error
	DeleteSubscription(ctx context.Context, id string) error
	ListDeliveries(ctx context.Context, app string, limit int) ([]core.Delivery, error)
}

// Config is what a Notifier needs; zero durations take the defaults.
type Config struct {
	Store Store
	// AllowPrivate lets receivers be on loopback and private networks.
	AllowPrivate bool
	Logger       *slog.Logger
	// Wake makes the consumer look for new events at once.
	Wake <-chan core.Event
	// Poll is how often the consumer looks for new events without Wake.
	Poll time.Duration
	// RetryFor is how long a failing delivery is retried, counted from its
	// first attempt (--notify-retry-for); Attempts, when > 0, also caps
	// the attempts. Retries of one subscription never hold back the
	// others, nor the next events.
	RetryFor             time.Duration
	Attempts             int
	RetryFirst, RetryMax time.Duration
	Timeout              time.Duration
	// SMTP is the relay of email subscriptions; nil refuses them.
	SMTP *SMTP
}

// Notifier delivers events to subscriptions.
type Notifier struct {
	cfg    Config
	guard  Guard
	client *http.Client
	log    *slog.Logger
}

// New builds a Notifier.
func New(cfg Config) *Notifier {
	if cfg.RetryFor <= 0 {
		cfg.RetryFor = DefaultRetryFor
	}
	if cfg.RetryFirst <= 0 {
		cfg.RetryFirst = DefaultRetryFirst
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = DefaultRetryMax
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	g := Guard{AllowPrivate: cfg.AllowPrivate}
	return &Notifier{cfg: cfg, guard: g, client: g.Client(cfg.Timeout), log: cfg.Logger}
}

// Run follows the event log until ctx ends. Each event gets one attempt
// per matching subscription, recorded, before the cursor moves past it;
// failed ones are retried by a second loop from the delivery log, with
// backoff, until acknowledged or RetryFor has passed since their first
// attempt. A dead receiver thus delays nobody else.
func (n *Notifier) Run(ctx context.Context) error {
	c := &outbox.Consumer{Store: n.cfg.Store, Name: ConsumerName, Handle: n.handle, Wake: n.cfg.Wake,
		Poll: n.cfg.Poll, Logger: n.log, RetryFirst: n.cfg.RetryFirst, RetryMax: n.cfg.RetryMax}
	retried := make(chan struct{})
	go func() {
		defer close(retried)
		n.retryLoop(ctx)
	}()
	err := c.Run(ctx)
	<-retried
	return err
}

// retryLoop retries pending deliveries until ctx ends.
func (n *Notifier) retryLoop(ctx context.Context) {
	tick := min(max(n.cfg.RetryFirst, 5*time.Millisecond), time.Second)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := n.retryPending(ctx, time.Now()); err != nil && ctx.Err() == nil {
			n.log.Warn("notify: retry pass", "err", err)
		}
	}
}

// retryPending makes the next attempt of every pending delivery that is
// due at now, in parallel, and waits for them.
func (n *Notifier) retryPending(ctx context.Context, now time.Time) error {
	pending, err := n.cfg.Store.PendingDeliveries(ctx, pendingBatch)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	for _, p := range pending {
		if now.Before(p.Last.Add(n.backoff(p.Attempts, p.Subscription, p.EventID))) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := n.retry(ctx, p); err != nil && ctx.Err() == nil {
				n.log.Warn("notify: retry", "subscription", p.Subscription, "event", p.EventID, "err", err)
			}
		}()
	}
	wg.Wait()
	return nil
}

// retry makes attempt p.Attempts+1 of a pending delivery.
func (n *Notifier) retry(ctx context.Context, p core.PendingDelivery) error {
	d := core.Delivery{Subscription: p.Subscription, App: p.App, EventID: p.EventID, Kind: p.Kind, Attempt: p.Attempts + 1}
	sub, err := n.cfg.Store.GetSubscription(ctx, p.Subscription)
	var e core.Event
	if err == nil {
		var es []core.Event
		es, err = n.cfg.Store.ListEvents(ctx, "", p.EventID-1, 1)
		if err == nil && (len(es) == 0 || es[0].ID != p.EventID) {
			err = fmt.Errorf("event %d: %w", p.EventID, core.ErrNotFound)
		}
		if err == nil {
			e = es[0]
		}
	}
	if errors.Is(err, core.ErrNotFound) {
		d.Status, d.Error, d.At = core.DeliveryGaveUp, "not retried: "+err.Error(), time.Now().UTC()
		return n.cfg.Store.RecordDelivery(context.WithoutCancel(ctx), d)
	}
	if err != nil {
		return err
	}
	return n.attempt(ctx, sub, e, p.Kind, d.Attempt, p.First)
}

// Start runs the notifier in a goroutine until the returned stop is called;
// stop waits for it to end.
func (n *Notifier) Start() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := n.Run(ctx); err != nil && ctx.Err() == nil {
			n.log.Error("notify: stopped", "err", err)
		}
	}()
	return func() { cancel(); <-done }
}

// handle delivers e to every subscription of its app that names its kind,
// in parallel: one attempt each; failures are left to the retry loop.
func (n *Notifier) handle(ctx context.Context, e core.Event) error {
	if e.App == "" {
		return nil
	}
	var dk core.DeploymentKind
	if needsDeploymentKind(e) {
		d, err := n.cfg.Store.GetDeployment(ctx, e.DeploymentID)
		if err != nil && !errors.Is(err, core.ErrNotFound) {
			return fmt.Errorf("deployment %d of event %d: %w", e.DeploymentID, e.ID, err)
		}
		dk = d.Kind
	}
	ks := Classify(e, dk)
	if len(ks) == 0 {
		return nil
	}
	subs, err := n.cfg.Store.ListSubscriptions(ctx, e.App)
	if err != nil {
		return fmt.Errorf("subscriptions of %s: %w", e.App, err)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(subs))
	for i, sub := range subs {
		kind := firstNamed(sub.Events, ks)
		// A new subscription gets what happens from then on, not the
		// backlog a lagging cursor still has to go through.
		if kind == "" || (!e.Time.IsZero() && e.Time.Before(sub.CreatedAt)) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = n.deliver(ctx, sub, e, kind)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func firstNamed(named, kinds []string) string {
	for _, k := range kinds {
		for _, want := range named {
			if want == k {
				return k
			}
		}
	}
	return ""
}

// deliver sends e to sub until it is acknowledged or the attempts run out.
// It returns an error only when the outcome could not be recorded or ctx
// ended: the event is then handed over again and sub, unless it already
// acknowledged it, gets it again.
func (n *Notifier) deliver(ctx context.Context, sub core.Subscription, e core.Event, kind string) error {
	// After a restart the consumer may hand over an event again: one that
	// was attempted already is done or belongs to the retry loop.
	before, done, err := n.cfg.Store.DeliveryState(ctx, sub.ID, e.ID)
	if err != nil || done || before > 0 {
		return err
	}
	return n.attempt(ctx, sub, e, kind, 1, time.Time{})
}

// attempt sends e to sub once as attempt number attempt and records the
// outcome: ok, failed (to be retried), or gave up (RetryFor would have
// passed since first before the next attempt, Attempts is reached, or the
// receiver's address is refused).
func (n *Notifier) attempt(ctx context.Context, sub core.Subscription, e core.Event, kind string, attempt int, first time.Time) error {
	err := n.send(ctx, sub, e, kind)
	if ctx.Err() != nil {
		return ctx.Err() // abandoned: the next active server tries again
	}
	now := time.Now().UTC()
	if first.IsZero() {
		first = now
	}
	d := core.Delivery{Subscription: sub.ID, App: sub.App, EventID: e.ID, Kind: kind, Attempt: attempt, Status: core.DeliveryOK, At: now}
	log := n.log.With("subscription", sub.ID, "app", sub.App, "event", e.ID, "kind", kind, "attempt", attempt)
	if err != nil {
		d.Status, d.Error = core.DeliveryFailed, err.Error()
		next := now.Add(n.backoff(attempt, sub.ID, e.ID))
		// A refused address does not become allowed by waiting.
		if n.cfg.Attempts > 0 && attempt >= n.cfg.Attempts || next.Sub(first) > n.cfg.RetryFor || errors.Is(err, ErrForbiddenAddress) {
			d.Status = core.DeliveryGaveUp
		}
	}
	if rerr := n.cfg.Store.RecordDelivery(context.WithoutCancel(ctx), d); rerr != nil {
		return fmt.Errorf("record delivery of event %d to %s: %w", e.ID, sub.ID, rerr)
	}
	switch d.Status {
	case core.DeliveryGaveUp:
		log.Warn("notify: giving up", "since", first, "err", err)
	case core.DeliveryFailed:
		log.Info("notify: delivery failed; will retry", "retry_in", n.backoff(attempt, sub.ID, e.ID), "err", err)
	}
	return nil
}

// backoff is the wait after attempt: doubling from RetryFirst up to
// RetryMax, with jitter in its upper half so receivers that failed
// together are not retried together. The jitter is a hash of the
// delivery, so every pass of the retry loop computes the same due time.
func (n *Notifier) backoff(attempt int, sub string, event int64) time.Duration {
	w := n.cfg.RetryFirst
	for i := 1; i < attempt && w < n.cfg.RetryMax; i++ {
		w *= 2
	}
	w = min(w, n.cfg.RetryMax)
	h := fnv.New64a()
	fmt.Fprintf(h, "%s:%d:%d", sub, event, attempt)
	return w/2 + time.Duration(h.Sum64()%uint64(w/2+1))
}

// Test sends a test event to subscription id once and records the attempt.
func (n *Notifier) Test(ctx context.Context, id, actor string) (core.Delivery, error) {
	sub, err := n.cfg.Store.GetSubscription(ctx, id)
	if err != nil {
		return core.Delivery{}, err
	}
	e := core.Event{App: sub.App, Time: time.Now().UTC(), Type: "notify.test", Actor: actor, Message: "test notification from cutover"}
	err = n.send(ctx, sub, e, KindTest)
	d := core.Delivery{Subscription: sub.ID, App: sub.App, Kind: KindTest, Attempt: 1, Status: core.DeliveryOK, At: time.Now().UTC()}
	if err != nil {
		d.Status, d.Error = core.DeliveryFailed, err.Error()
	}
	if rerr := n.cfg.Store.RecordDelivery(ctx, d); rerr != nil {
		return d, rerr
	}
	return d, err
}

// CheckURL refuses a subscription URL this server may not deliver to.
func (n *Notifier) CheckURL(ctx context.Context, raw string) error { return n.guard.CheckURL(ctx, raw) }

// payload is the JSON body of a webhook: the event's fields and its kind.
type payload struct {
	core.Event
	Kind         string `json:"kind"`
	Subscription string `json:"subscription"`
}

// slackMessage is a Slack-compatible incoming-webhook body.
type slackMessage struct {
	Text   string       `json:"text"`
	Blocks []slackBlock `json:"blocks"`
}

type slackBlock struct {
	Type     string      `json:"type"`
	Text     *slackText  `json:"text,omitempty"`
	Elements []slackText `json:"elements,omitempty"`
}

type slackText struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// Body is what sub receives for e as kind.
func Body(sub core.Subscription, e core.Event, kind string) ([]byte, error) {
	if sub.Channel == core.ChannelSlack {
		text := Text(e, kind)
		ctxLine := fmt.Sprintf("%s · event %d · %s", kind, e.ID, e.Time.UTC().Format(time.RFC3339))
		if e.Actor != "" {
			ctxLine += " · by " + e.Actor
		}
		return json.Marshal(slackMessage{Text: text, Blocks: []slackBlock{
			{Type: "section", Text: &slackText{Type: "mrkdwn", Text: text}},
			{Type: "context", Elements: []slackText{{Type: "mrkdwn", Text: ctxLine}}},
		}})
	}
	return json.Marshal(payload{Event: e, Kind: kind, Subscription: sub.ID})
}

// Sign is the X-Cutover-Signature of body sent at timestamp (Unix
// seconds): "sha256=" + hex HMAC-SHA256 of "TIMESTAMP.BODY" with secret.
func Sign(secret, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify checks a signature made by Sign (for receivers written in Go).
func Verify(secret, timestamp string, body []byte, signature string) bool {
	return hmac.Equal([]byte(Sign(secret, timestamp, body)), []byte(signature))
}

// send makes one attempt; a 2xx answer is an acknowledgement.
func (n *Notifier) send(ctx context.Context, sub core.Subscription, e core.Event, kind string) error {
	if sub.Channel == core.ChannelEmail {
		return n.sendEmail(ctx, sub, e, kind)
	}
	if err := n.guard.CheckURL(ctx, sub.URL); err != nil {
		return err
	}
	body, err := Body(sub, e, kind)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sub.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "cutover-notify")
	req.Header.Set(TimestampHeader, ts)
	req.Header.Set(DeliveryHeader, sub.ID+":"+strconv.FormatInt(e.ID, 10))
	if sub.Secret != "" {
		req.Header.Set(SignatureHeader, Sign(sub.Secret, ts, body))
	}
	resp, err := n.client.Do(req)
	if err != nil {
		// The URL may hold a token (Slack's do): the log names the
		// subscription, not its URL.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("post: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("receiver answered %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}

// NewSecret makes a webhook signing secret.
func NewSecret() string {
	b := make([]byte, secretBytes)
	_, _ = cryptorand.Read(b)
	return "whsec_" + hex.EncodeToString(b)
}

// NewID makes a subscription id.
func NewID() string {
	b := make([]byte, subscriptionIDSize)
	_, _ = cryptorand.Read(b)
	return "ntf_" + hex.EncodeToString(b)
}
