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
	"io"
	"log/slog"
	"math/rand/v2"
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
	ConsumerName       = "notify" // the outbox cursor's name
	DefaultAttempts    = 6        // per subscription and event, then it gives up
	DefaultRetryFirst  = time.Second
	DefaultRetryMax    = time.Minute
	DefaultTimeout     = 10 * time.Second // per attempt: dial, TLS, answer
	DefaultLogLimit    = 50               // delivery attempts `notify log` shows
	SignatureHeader    = "X-Cutover-Signature"
	TimestampHeader    = "X-Cutover-Timestamp"
	DeliveryHeader     = "X-Cutover-Delivery" // SUBSCRIPTION:EVENT, the same on every attempt (an idempotency key)
	maxRedirects       = 3
	maxErrorBody       = 512
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
	Poll                 time.Duration
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
	if cfg.Attempts <= 0 {
		cfg.Attempts = DefaultAttempts
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

// Run follows the event log until ctx ends. The cursor moves past an event
// only once every matching subscription acknowledged it or was given up on.
func (n *Notifier) Run(ctx context.Context) error {
	c := &outbox.Consumer{Store: n.cfg.Store, Name: ConsumerName, Handle: n.handle, Wake: n.cfg.Wake,
		Poll: n.cfg.Poll, Logger: n.log, RetryFirst: n.cfg.RetryFirst, RetryMax: n.cfg.RetryMax}
	return c.Run(ctx)
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
// in parallel, each with its own retries.
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
	// Attempts made before a restart count: numbering goes on and the
	// limit holds across restarts.
	before, done, err := n.cfg.Store.DeliveryState(ctx, sub.ID, e.ID)
	if err != nil || done {
		return err
	}
	log := n.log.With("subscription", sub.ID, "app", sub.App, "event", e.ID, "kind", kind)
	for attempt := before + 1; ; attempt++ {
		err := n.send(ctx, sub, e, kind)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d := core.Delivery{Subscription: sub.ID, App: sub.App, EventID: e.ID, Kind: kind, Attempt: attempt, Status: core.DeliveryOK, At: time.Now().UTC()}
		if err != nil {
			d.Status, d.Error = core.DeliveryFailed, err.Error()
			if attempt >= n.cfg.Attempts {
				d.Status = core.DeliveryGaveUp
			}
		}
		if rerr := n.cfg.Store.RecordDelivery(context.WithoutCancel(ctx), d); rerr != nil {
			return fmt.Errorf("record delivery of event %d to %s: %w", e.ID, sub.ID, rerr)
		}
		switch d.Status {
		case core.DeliveryOK:
			return nil
		case core.DeliveryGaveUp:
			log.Warn("notify: giving up", "attempts", attempt, "err", err)
			return nil
		}
		wait := n.backoff(attempt)
		log.Info("notify: delivery failed; will retry", "attempt", attempt, "retry_in", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// backoff doubles from RetryFirst up to RetryMax, with jitter in its upper
// half so receivers that failed together are not retried together.
func (n *Notifier) backoff(attempt int) time.Duration {
	w := n.cfg.RetryFirst
	for i := 1; i < attempt && w < n.cfg.RetryMax; i++ {
		w *= 2
	}
	w = min(w, n.cfg.RetryMax)
	return w/2 + rand.N(w/2+1)
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
