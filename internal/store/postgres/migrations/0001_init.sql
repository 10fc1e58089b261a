CREATE TABLE apps (
    name       TEXT PRIMARY KEY,
    repo       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE artifacts (
    app        TEXT NOT NULL REFERENCES apps(name),
    sha        TEXT NOT NULL,
    digest     TEXT NOT NULL,
    path       TEXT NOT NULL,
    size       BIGINT NOT NULL,
    build_log  TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (app, sha)
);

CREATE TABLE configs (
    app        TEXT NOT NULL REFERENCES apps(name),
    env        TEXT NOT NULL,
    version    BIGINT NOT NULL,
    vars       TEXT NOT NULL,
    secrets    TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (app, env, version)
);

CREATE TABLE releases (
    app            TEXT NOT NULL REFERENCES apps(name),
    number         BIGINT NOT NULL,
    env            TEXT NOT NULL,
    sha            TEXT NOT NULL,
    digest         TEXT NOT NULL,
    config_version BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    PRIMARY KEY (app, number)
);

CREATE TABLE deployments (
    id               BIGSERIAL PRIMARY KEY,
    app              TEXT NOT NULL REFERENCES apps(name),
    env              TEXT NOT NULL,
    kind             TEXT NOT NULL,
    release          BIGINT NOT NULL,
    previous_release BIGINT NOT NULL,
    sha              TEXT NOT NULL,
    colour           TEXT NOT NULL,
    state            TEXT NOT NULL,
    step             TEXT NOT NULL,
    reason           TEXT NOT NULL,
    requested_by     TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    switched_at      BIGINT,
    finished_at      BIGINT
);
CREATE INDEX deployments_by_app ON deployments (app, id);
CREATE INDEX deployments_by_env ON deployments (app, env, id);
CREATE INDEX deployments_unfinished ON deployments (id) WHERE state IN ('pending', 'running');

CREATE TABLE events (
    id            BIGSERIAL PRIMARY KEY,
    app           TEXT NOT NULL,
    env           TEXT NOT NULL,
    deployment_id BIGINT NOT NULL,
    time          BIGINT NOT NULL,
    type          TEXT NOT NULL,
    step          TEXT NOT NULL,
    message       TEXT NOT NULL
);
CREATE INDEX events_by_app ON events (app, id);

CREATE TABLE env_states (
    app   TEXT NOT NULL,
    env   TEXT NOT NULL,
    state TEXT NOT NULL,
    PRIMARY KEY (app, env)
);

CREATE TABLE locks (
    app        TEXT NOT NULL,
    env        TEXT NOT NULL,
    holder     TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (app, env)
);
