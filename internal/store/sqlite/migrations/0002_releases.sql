CREATE TABLE candidates (
    app         TEXT NOT NULL REFERENCES apps(name),
    number      INTEGER NOT NULL,
    patch       INTEGER NOT NULL,
    version     TEXT NOT NULL,
    branch      TEXT NOT NULL,
    base        TEXT NOT NULL,
    head        TEXT NOT NULL,
    merge_sha   TEXT NOT NULL,
    tag         TEXT NOT NULL,
    notes       TEXT NOT NULL,
    state       TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    finished_at INTEGER,
    PRIMARY KEY (app, number, patch)
);

CREATE TABLE checks (
    app        TEXT NOT NULL,
    sha        TEXT NOT NULL,
    env        TEXT NOT NULL,
    name       TEXT NOT NULL,
    passed     INTEGER NOT NULL,
    detail     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (app, sha, env, name)
);
