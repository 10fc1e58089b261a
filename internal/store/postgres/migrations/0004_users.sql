-- People and roles: users, their role bindings and their API tokens
-- (stored as SHA-256 hashes; the token itself is shown once).
CREATE TABLE users (
    name       TEXT PRIMARY KEY,
    email      TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL
);

CREATE TABLE role_bindings (
    user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    position  INTEGER NOT NULL,
    role      TEXT NOT NULL,
    apps      TEXT NOT NULL,
    envs      TEXT NOT NULL,
    PRIMARY KEY (user_name, position)
);

CREATE TABLE api_tokens (
    id         TEXT PRIMARY KEY,
    hash       TEXT NOT NULL UNIQUE,
    user_name  TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    last_used  BIGINT,
    revoked_at BIGINT
);
CREATE INDEX api_tokens_user ON api_tokens (user_name);
