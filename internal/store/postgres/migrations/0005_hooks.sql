-- Inbound webhooks (GitHub, GitLab): each app's hook secret, sealed with
-- the server's secret key (the server needs it back to compute HMACs), and
-- the delivery ids already processed, so a replay does nothing. Deliveries
-- are kept for a bounded time (the store prunes them as it records new ones).
CREATE TABLE hook_secrets (
    app        TEXT PRIMARY KEY,
    secret     TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE hook_deliveries (
    source TEXT NOT NULL,
    id     TEXT NOT NULL,
    app    TEXT NOT NULL,
    at     BIGINT NOT NULL,
    PRIMARY KEY (source, id)
);
CREATE INDEX hook_deliveries_by_at ON hook_deliveries (at);
