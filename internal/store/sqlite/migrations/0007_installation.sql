-- The installation: one row, made by the first server that opens the
-- database. Its id marks what cutover leaves outside the database (Docker
-- containers and images), so the servers sharing this database recognise
-- them and every other installation leaves them alone.
CREATE TABLE installation (
    singleton  INTEGER PRIMARY KEY CHECK (singleton = 1),
    id         TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
