// Package outbox reads the timeline as an outbox: a consumer (a webhook
// sender, a chat notifier) follows the event log from a cursor it keeps in
// the store, so every event reaches it at least once, in order, across
// restarts. An event is handed over again until the consumer accepts it;
// the cursor moves only after that.
package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cutover/cutover/internal/core"
)

// Defaults of a Consumer.
const (
	DefaultPoll       = time.Second
	DefaultBatch      = 100
	DefaultRetryFirst = 100 * time.Millisecond
	DefaultRetryMax   = time.Minute
)

// Store is what a consumer reads and where it keeps its position.
type Store interface {
	ListEvents(ctx context.Context, app string, afterID int64, limit int) ([]core.Event, error)
	GetCursor(ctx context.Context, name string) (int64, error)
	PutCursor(ctx context.Context, name string, position int64) error
}

// Consumer follows the event log for one named reader.
type Consumer struct {
	Store Store
	// Name identifies the reader's cursor ("webhook:ci", "slack").
	Name string
	// Handle receives each event; an error makes it receive the same event
	// again after a backoff. It must tolerate an event it has seen (a crash
	// between Handle and the cursor's write hands it over again).
	Handle func(ctx context.Context, e core.Event) error
	// Wake, when set, makes the consumer look for new events at once (the
	// deploy machine's live fan-out); it polls every Poll anyway.
	Wake   <-chan core.Event
	Poll   time.Duration
	Batch  int
	Logger *slog.Logger
	// RetryFirst and RetryMax bound the backoff after a failed Handle.
	RetryFirst, RetryMax time.Duration
}

// Run delivers events until ctx ends. It returns ctx's error, or an error
// reading the cursor it cannot do without.
func (c *Consumer) Run(ctx context.Context) error {
	if c.Store == nil || c.Handle == nil || c.Name == "" {
		return errors.New("outbox: Store, Name and Handle are required")
	}
	poll, batch := c.Poll, c.Batch
	if poll <= 0 {
		poll = DefaultPoll
	}
	if batch <= 0 {
		batch = DefaultBatch
	}
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pos, err := c.Store.GetCursor(ctx, c.Name)
	if err != nil {
		return fmt.Errorf("outbox %s: read cursor: %w", c.Name, err)
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		es, err := c.Store.ListEvents(ctx, "", pos, batch)
		if err != nil && ctx.Err() == nil {
			log.Error("outbox: read events", "consumer", c.Name, "after", pos, "err", err)
		}
		for _, e := range es {
			if err := c.deliver(ctx, e, log); err != nil {
				return err
			}
			pos = e.ID
			if err := c.Store.PutCursor(ctx, c.Name, pos); err != nil && ctx.Err() == nil {
				// The event was handled: at worst it is handed over again.
				log.Error("outbox: write cursor", "consumer", c.Name, "position", pos, "err", err)
			}
		}
		if len(es) == batch {
			continue // more are waiting
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		case <-c.Wake:
		}
	}
}

// deliver hands e over until Handle accepts it or ctx ends.
func (c *Consumer) deliver(ctx context.Context, e core.Event, log *slog.Logger) error {
	wait, most := c.RetryFirst, c.RetryMax
	if wait <= 0 {
		wait = DefaultRetryFirst
	}
	if most <= 0 {
		most = DefaultRetryMax
	}
	for {
		err := c.Handle(ctx, e)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		log.Warn("outbox: handler failed; will retry", "consumer", c.Name, "event", e.ID, "type", e.Type, "retry_in", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(wait*2, most)
	}
}
