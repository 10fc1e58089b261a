-- Notifications: subscriptions of an app's events (webhook or Slack) and
-- every delivery attempt, so a restart does not resend what a receiver
-- acknowledged and `notify log` can show what happened.
CREATE TABLE notify_subscriptions (
    id         TEXT PRIMARY KEY,
    app        TEXT NOT NULL,
    events     TEXT NOT NULL,
    channel    TEXT NOT NULL,
    url        TEXT NOT NULL,
    secret     TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX notify_subscriptions_app ON notify_subscriptions (app);

CREATE TABLE notify_deliveries (
    subscription TEXT NOT NULL,
    app          TEXT NOT NULL,
    event_id     BIGINT NOT NULL,
    kind         TEXT NOT NULL,
    attempt      INTEGER NOT NULL,
    status       TEXT NOT NULL,
    error        TEXT NOT NULL,
    at           BIGINT NOT NULL,
    PRIMARY KEY (subscription, event_id, attempt)
);
CREATE INDEX notify_deliveries_app ON notify_deliveries (app, at);
