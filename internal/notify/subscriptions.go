package notify

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/cutover/cutover/internal/core"
)

// Add checks sub (its kinds, its channel, its URL against the Guard) and
// stores it with a new id and signing secret. The answer is the only place
// the secret is shown.
func (n *Notifier) Add(ctx context.Context, sub core.Subscription) (core.Subscription, error) {
	events, err := ParseKinds(sub.Events)
	if err != nil {
		return core.Subscription{}, err
	}
	secret := NewSecret()
	switch sub.Channel {
	case core.ChannelWebhook, core.ChannelSlack:
		if err := n.guard.CheckURL(ctx, sub.URL); err != nil {
			return core.Subscription{}, fmt.Errorf("%w: %v", core.ErrInvalid, err)
		}
	case core.ChannelEmail:
		if n.cfg.SMTP == nil {
			return core.Subscription{}, fmt.Errorf("channel email: %w: the server has no SMTP relay; start it with --smtp-addr HOST:PORT --smtp-from ADDR", core.ErrInvalid)
		}
		to, err := Recipients(sub.URL)
		if err != nil {
			return core.Subscription{}, err
		}
		sub.URL, secret = mailtoURL(to), "" // a mail is not signed
	default:
		return core.Subscription{}, fmt.Errorf("channel %q: %w: want webhook, slack or email", sub.Channel, core.ErrInvalid)
	}
	sub.ID, sub.Events, sub.Secret, sub.CreatedAt = NewID(), events, secret, time.Now().UTC()
	if err := n.cfg.Store.CreateSubscription(ctx, sub); err != nil {
		return core.Subscription{}, err
	}
	n.log.Info("notify: subscription added", "subscription", sub.ID, "app", sub.App, "channel", sub.Channel, "by", sub.CreatedBy)
	return sub, nil
}

// List returns app's subscriptions, without secrets and with the path of a
// Slack URL hidden (it is the webhook's token).
func (n *Notifier) List(ctx context.Context, app string) ([]core.Subscription, error) {
	subs, err := n.cfg.Store.ListSubscriptions(ctx, app)
	for i := range subs {
		subs[i] = redact(subs[i])
	}
	return subs, err
}

// Get returns a subscription, redacted as in List.
func (n *Notifier) Get(ctx context.Context, id string) (core.Subscription, error) {
	sub, err := n.cfg.Store.GetSubscription(ctx, id)
	return redact(sub), err
}

// Remove deletes a subscription; its delivery log stays.
func (n *Notifier) Remove(ctx context.Context, id string) error {
	return n.cfg.Store.DeleteSubscription(ctx, id)
}

// Log returns app's newest delivery attempts, at most limit (0: the default).
func (n *Notifier) Log(ctx context.Context, app string, limit int) ([]core.Delivery, error) {
	if limit <= 0 {
		limit = DefaultLogLimit
	}
	return n.cfg.Store.ListDeliveries(ctx, app, limit)
}

func redact(sub core.Subscription) core.Subscription {
	sub.Secret = ""
	if sub.Channel == core.ChannelSlack {
		if u, err := url.Parse(sub.URL); err == nil && u.Path != "" && u.Path != "/" {
			u.Path, u.RawQuery = "/...", ""
			sub.URL = u.String()
		}
	}
	return sub
}
