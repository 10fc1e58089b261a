package client

import (
	"context"
	"strconv"

	"github.com/cutover/cutover/internal/core"
)

// AddSubscription subscribes a webhook or Slack URL to app's events of
// some kinds; the answer carries the signing secret, shown only here.
func (c *Client) AddSubscription(ctx context.Context, app string, events []string, channel core.NotifyChannel, url string) (core.Subscription, error) {
	var sub core.Subscription
	err := c.do(ctx, "POST", "/api/v1/apps/"+esc(app)+"/notify", map[string]any{"events": events, "channel": channel, "url": url}, &sub)
	return sub, err
}

// Subscriptions lists app's subscriptions (no secrets).
func (c *Client) Subscriptions(ctx context.Context, app string) ([]core.Subscription, error) {
	var subs []core.Subscription
	err := c.do(ctx, "GET", "/api/v1/apps/"+esc(app)+"/notify", nil, &subs)
	return subs, err
}

// RemoveSubscription deletes a subscription.
func (c *Client) RemoveSubscription(ctx context.Context, id string) error {
	return c.do(ctx, "DELETE", "/api/v1/notify/"+esc(id), nil, nil)
}

// TestSubscription sends a test event to a subscription once.
func (c *Client) TestSubscription(ctx context.Context, id string) (core.Delivery, error) {
	var d core.Delivery
	err := c.do(ctx, "POST", "/api/v1/notify/"+esc(id)+"/test", nil, &d)
	return d, err
}

// NotifyLog returns app's newest delivery attempts (limit 0: the server's default).
func (c *Client) NotifyLog(ctx context.Context, app string, limit int) ([]core.Delivery, error) {
	var ds []core.Delivery
	path := "/api/v1/apps/" + esc(app) + "/notify/log"
	if limit > 0 {
		path += "?limit=" + strconv.Itoa(limit)
	}
	err := c.do(ctx, "GET", path, nil, &ds)
	return ds, err
}
