-- Governance: CI results per commit, reviews, approvals, environment locks
-- set by people, and the server-side policy, versioned.
CREATE TABLE commit_statuses (
    app   TEXT NOT NULL,
    sha   TEXT NOT NULL,
    name  TEXT NOT NULL,
    state TEXT NOT NULL,
    url   TEXT NOT NULL,
    actor   TEXT NOT NULL,
    at    INTEGER NOT NULL,
    PRIMARY KEY (app, sha, name)
);

CREATE TABLE reviews (
    app TEXT NOT NULL,
    sha TEXT NOT NULL,
    actor TEXT NOT NULL,
    at  INTEGER NOT NULL,
    PRIMARY KEY (app, sha, actor)
);

CREATE TABLE approvals (
    app     TEXT NOT NULL,
    env     TEXT NOT NULL,
    release INTEGER NOT NULL,
    sha     TEXT NOT NULL,
    actor     TEXT NOT NULL,
    at      INTEGER NOT NULL
);
CREATE INDEX approvals_by_env ON approvals (app, env);

CREATE TABLE env_locks (
    app       TEXT NOT NULL,
    env       TEXT NOT NULL,
    reason    TEXT NOT NULL,
    actor       TEXT NOT NULL,
    at        INTEGER NOT NULL,
    automatic BOOLEAN NOT NULL,
    PRIMARY KEY (app, env)
);

CREATE TABLE policies (
    app     TEXT NOT NULL,
    version INTEGER NOT NULL,
    body    TEXT NOT NULL,
    actor     TEXT NOT NULL,
    at      INTEGER NOT NULL,
    PRIMARY KEY (app, version)
);

-- How a deployment asked to be judged (override, hotfix, waiting).
ALTER TABLE deployments ADD COLUMN options TEXT NOT NULL DEFAULT '';
