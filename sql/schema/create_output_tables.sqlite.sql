-- Our output "schema" on SQLite: a database file attached under the schema's name (see
-- recsys_tasks/data/warehouse.py). Same tables as the PostgreSQL file, without partitioning; timestamps
-- are ISO-8601 text and JSON is text. View bodies use unqualified names (SQLite's rule for views
-- inside an attached database).
-- Inputs: identifier {{schema}}. Idempotent: IF NOT EXISTS everywhere.

CREATE TABLE IF NOT EXISTS {{schema}}.model_registry (
    model_version   TEXT PRIMARY KEY,
    parent_version  TEXT REFERENCES model_registry (model_version),
    kind            TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('candidate', 'champion', 'rejected', 'retired')),
    dag_id          TEXT NOT NULL,
    run_id          TEXT NOT NULL,
    as_of           TEXT NOT NULL,
    data_start      TEXT NOT NULL,
    data_end        TEXT NOT NULL,
    artifact_uri    TEXT NOT NULL,
    checksum        TEXT NOT NULL,
    config          TEXT NOT NULL,
    metrics         TEXT NOT NULL DEFAULT '{}',
    holdout_users   INTEGER,
    decision        TEXT,
    created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now')),
    status_changed_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now')),
    -- Set when retention deleted the model directory (the row stays). SQLite has no ADD COLUMN IF NOT
    -- EXISTS: files made before this column get it from cleanup (sql/add_artifact_deleted_column.sqlite.sql).
    artifact_deleted_at TEXT
);

CREATE UNIQUE INDEX IF NOT EXISTS {{schema}}.model_registry_one_champion
    ON model_registry (status) WHERE status = 'champion';

-- The champion timeline: version <model_version> publishes every as-of date from <champion_from>
-- until the next period starts (recsys_tasks.registry.champion_at). A run for as-of D is judged
-- against the champion of D - 1 day and, if promoted, starts a period at D; a backfill inserts a
-- period between two existing ones and so never changes the newest (current) champion.
CREATE TABLE IF NOT EXISTS {{schema}}.champion_periods (
    champion_from   TEXT PRIMARY KEY,
    model_version   TEXT NOT NULL REFERENCES model_registry (model_version),
    decision        TEXT,
    recorded_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now'))
);

-- A registry from before the timeline: its champion publishes from its own as-of date on.
INSERT INTO {{schema}}.champion_periods (champion_from, model_version, decision)
SELECT as_of, model_version, decision FROM {{schema}}.model_registry
WHERE status = 'champion' AND NOT EXISTS (SELECT 1 FROM {{schema}}.champion_periods);

CREATE TABLE IF NOT EXISTS {{schema}}.evaluations (
    run_id          TEXT NOT NULL,
    as_of           TEXT NOT NULL,
    model_version   TEXT NOT NULL,
    role            TEXT NOT NULL CHECK (role IN ('challenger', 'champion', 'baseline')),
    segment         TEXT NOT NULL,
    metric          TEXT NOT NULL,
    value           REAL NOT NULL,
    users           INTEGER NOT NULL,
    created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now')),
    PRIMARY KEY (run_id, model_version, role, segment, metric)
);

-- How each challenger compared with the model it was judged against, on the same holdout users:
-- the paired-bootstrap interval of the relative change of evaluation.primary_metric and the
-- per-user values it was computed from (JSON arrays in holdout user order), so it can be recomputed.
CREATE TABLE IF NOT EXISTS {{schema}}.evaluation_comparisons (
    run_id            TEXT NOT NULL,
    as_of             TEXT NOT NULL,
    challenger        TEXT NOT NULL,
    reference         TEXT NOT NULL,
    reference_role    TEXT NOT NULL CHECK (reference_role IN ('champion', 'baseline')),
    metric            TEXT NOT NULL,
    users             INTEGER NOT NULL,
    confidence        REAL NOT NULL,
    relative_delta    REAL NOT NULL,
    ci_low            REAL NOT NULL,
    ci_high           REAL NOT NULL,
    challenger_mean   REAL NOT NULL,
    reference_mean    REAL NOT NULL,
    resamples         INTEGER NOT NULL,
    seed              BIGINT NOT NULL,
    challenger_values TEXT NOT NULL,
    reference_values  TEXT NOT NULL,
    created_at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now')),
    PRIMARY KEY (run_id, challenger, reference_role)
);

CREATE TABLE IF NOT EXISTS {{schema}}.validation_runs (
    run_id          TEXT PRIMARY KEY,
    as_of           TEXT NOT NULL,
    interval_events INTEGER NOT NULL,
    success         BOOLEAN NOT NULL,
    docs_uri        TEXT,
    created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now'))
);

CREATE TABLE IF NOT EXISTS {{schema}}.validation_results (
    run_id          TEXT NOT NULL,
    as_of           TEXT NOT NULL,
    suite           TEXT NOT NULL,
    expectation     TEXT NOT NULL,
    column_name     TEXT,
    severity        TEXT NOT NULL CHECK (severity IN ('blocking', 'warning', 'info')),
    success         BOOLEAN NOT NULL,
    observed_value  TEXT,
    details         TEXT,
    created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now'))
);
CREATE INDEX IF NOT EXISTS {{schema}}.validation_results_run ON validation_results (run_id);

CREATE TABLE IF NOT EXISTS {{schema}}.publications (
    as_of           TEXT PRIMARY KEY,
    run_id          TEXT NOT NULL,
    model_version   TEXT NOT NULL,
    users           INTEGER NOT NULL,
    rows            INTEGER NOT NULL,
    top_k           INTEGER NOT NULL,
    published_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now'))
);

CREATE TABLE IF NOT EXISTS {{schema}}.recommendations (
    as_of           TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    rank            INTEGER NOT NULL,
    item_id         TEXT NOT NULL,
    score           REAL NOT NULL,
    model_version   TEXT NOT NULL,
    run_id          TEXT NOT NULL,
    reason          TEXT,
    generated_at    TEXT NOT NULL,
    PRIMARY KEY (as_of, user_id, rank)
);
CREATE INDEX IF NOT EXISTS {{schema}}.recommendations_item ON recommendations (as_of, item_id);

CREATE VIEW IF NOT EXISTS {{schema}}.latest_recommendations AS
SELECT r.*
FROM recommendations AS r
WHERE r.as_of = (SELECT max(p.as_of) FROM publications AS p);

CREATE TABLE IF NOT EXISTS {{schema}}.similar_items (
    as_of           TEXT NOT NULL,
    item_id         TEXT NOT NULL,
    rank            INTEGER NOT NULL,
    similar_item_id TEXT NOT NULL,
    score           REAL NOT NULL,
    model_version   TEXT NOT NULL,
    PRIMARY KEY (as_of, item_id, rank)
);

CREATE VIEW IF NOT EXISTS {{schema}}.latest_similar_items AS
SELECT s.*
FROM similar_items AS s
WHERE s.as_of = (SELECT max(m.as_of) FROM similar_items AS m);

CREATE VIEW IF NOT EXISTS {{schema}}.champion AS
SELECT * FROM model_registry WHERE status = 'champion';

CREATE VIEW IF NOT EXISTS {{schema}}.champion_timeline AS
SELECT p.champion_from,
       lead(p.champion_from) OVER (ORDER BY p.champion_from) AS champion_to,
       p.model_version, p.decision, p.recorded_at
FROM champion_periods AS p;

-- Which version of this file the schema was last created or upgraded with (one row); see the
-- PostgreSQL file.
CREATE TABLE IF NOT EXISTS {{schema}}.schema_version (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    version     TEXT NOT NULL,
    applied_at  TEXT NOT NULL
);
