-- Waiting deployments, typed events read as an outbox, env state
-- compare-and-swap, and the server lease.
ALTER TABLE deployments ADD COLUMN waiting_on TEXT NOT NULL DEFAULT '';
ALTER TABLE deployments ADD COLUMN wait_until BIGINT;
ALTER TABLE deployments ADD COLUMN replace_held BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE deployments ADD COLUMN instances TEXT NOT NULL DEFAULT '';
DROP INDEX deployments_unfinished;
CREATE INDEX deployments_unfinished ON deployments (id) WHERE state IN ('waiting', 'pending', 'running');

ALTER TABLE events ADD COLUMN release BIGINT NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN sha TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN state TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN reason TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN actor TEXT NOT NULL DEFAULT '';

ALTER TABLE env_states ADD COLUMN version BIGINT NOT NULL DEFAULT 0;

CREATE TABLE cursors (
    name     TEXT PRIMARY KEY,
    position BIGINT NOT NULL
);

CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    generation BIGINT NOT NULL,
    expires_at BIGINT NOT NULL -- milliseconds, database clock
);
