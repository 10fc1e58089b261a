CREATE TABLE candidates (
    app         TEXT NOT NULL REFERENCES apps(name),
    number      BIGINT NOT NULL,
    patch       BIGINT NOT NULL,
    version     TEXT NOT NULL,
    branch      TEXT NOT NULL,
    base        TEXT NOT NULL,
    head        TEXT NOT NULL,
    merge_sha   TEXT NOT NULL,
    tag         TEXT NOT NULL,
    notes       TEXT NOT NULL,
    state       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    finished_at BIGINT,
    PRIMARY KEY (app, number, patch)
);

CREATE TABLE checks (
    app        TEXT NOT NULL,
    sha        TEXT NOT NULL,
    env        TEXT NOT NULL,
    name       TEXT NOT NULL,
    passed     BIGINT NOT NULL,
    detail     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (app, sha, env, name)
);
