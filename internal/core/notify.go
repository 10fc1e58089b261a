package core

import "time"

// NotifyChannel is how a subscription is delivered.
type NotifyChannel string

// Notification channels.
const (
	ChannelWebhook NotifyChannel = "webhook" // POST of the event as JSON, signed with the subscription's secret
	ChannelSlack   NotifyChannel = "slack"   // POST of a Slack-compatible message {"text", "blocks"}
	ChannelEmail   NotifyChannel = "email"   // a plain-text mail through the server's SMTP relay; URL is mailto:ADDR[,ADDR]
)

// Subscription sends an app's events of some kinds to a URL.
type Subscription struct {
	ID      string        `json:"id"`
	App     string        `json:"app"`
	Events  []string      `json:"events"` // notification kinds (internal/notify.Kinds)
	Channel NotifyChannel `json:"channel"`
	URL     string        `json:"url"`
	// Secret signs webhook deliveries; it is shown once, when created, and
	// never in a listing.
	Secret    string    `json:"secret,omitempty"`
	CreatedBy string    `json:"created_by,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// DeliveryStatus is the outcome of one delivery attempt.
type DeliveryStatus string

// Delivery statuses.
const (
	DeliveryOK     DeliveryStatus = "ok"      // the receiver acknowledged (2xx)
	DeliveryFailed DeliveryStatus = "failed"  // this attempt failed; another may follow
	DeliveryGaveUp DeliveryStatus = "gave_up" // the last attempt failed; the event is skipped for this subscription
)

// PendingDelivery is an event a subscription has not yet acknowledged or
// been given up on, after at least one failed attempt.
type PendingDelivery struct {
	Subscription string
	App          string
	EventID      int64
	Kind         string
	Attempts     int       // made so far
	First, Last  time.Time // of the first and the latest attempt
}

// Delivery is one attempt to deliver an event to a subscription.
type Delivery struct {
	Subscription string         `json:"subscription"`
	App          string         `json:"app"`
	EventID      int64          `json:"event_id"`
	Kind         string         `json:"kind"`
	Attempt      int            `json:"attempt"`
	Status       DeliveryStatus `json:"status"`
	Error        string         `json:"error,omitempty"`
	At           time.Time      `json:"at"`
}
