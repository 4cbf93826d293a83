-- Our output schema on PostgreSQL: registry, evaluations, validation history, publications and the
-- recommendation and similar-items tables (partitioned by as-of date) with their views.
-- Inputs: identifier {{schema}} (config warehouse.output_schema; created by the caller).
-- Idempotent: every statement is IF NOT EXISTS / OR REPLACE. Run once per version of this file
-- (schema_version below), by the first task that finds the schema missing or older.

CREATE TABLE IF NOT EXISTS {{schema}}.model_registry (
    model_version   TEXT PRIMARY KEY,
    parent_version  TEXT REFERENCES {{schema}}.model_registry (model_version),
    kind            TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('candidate', 'champion', 'rejected', 'retired')),
    dag_id          TEXT NOT NULL,
    run_id          TEXT NOT NULL,
    as_of           DATE NOT NULL,
    data_start      TIMESTAMPTZ NOT NULL,
    data_end        TIMESTAMPTZ NOT NULL,
    artifact_uri    TEXT NOT NULL,
    checksum        TEXT NOT NULL,
    config          JSONB NOT NULL,
    metrics         JSONB NOT NULL DEFAULT '{}'::jsonb,
    holdout_users   INTEGER,
    decision        TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    status_changed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    artifact_deleted_at TIMESTAMPTZ  -- set when retention deleted the model directory (the row stays)
);
-- Schemas created before artifact_deleted_at existed get it here.
ALTER TABLE {{schema}}.model_registry ADD COLUMN IF NOT EXISTS artifact_deleted_at TIMESTAMPTZ;

-- Exactly one champion, enforced by the database.
CREATE UNIQUE INDEX IF NOT EXISTS model_registry_one_champion
    ON {{schema}}.model_registry (status) WHERE status = 'champion';

-- The champion timeline: version <model_version> publishes every as-of date from <champion_from>
-- until the next period starts (recsys_tasks.registry.champion_at). A run for as-of D is judged
-- against the champion of D - 1 day and, if promoted, starts a period at D; a backfill inserts a
-- period between two existing ones and so never changes the newest (current) champion.
CREATE TABLE IF NOT EXISTS {{schema}}.champion_periods (
    champion_from   DATE PRIMARY KEY,
    model_version   TEXT NOT NULL REFERENCES {{schema}}.model_registry (model_version),
    decision        TEXT,
    recorded_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- A registry from before the timeline: its champion publishes from its own as-of date on.
INSERT INTO {{schema}}.champion_periods (champion_from, model_version, decision)
SELECT as_of, model_version, decision FROM {{schema}}.model_registry
WHERE status = 'champion' AND NOT EXISTS (SELECT 1 FROM {{schema}}.champion_periods);

CREATE TABLE IF NOT EXISTS {{schema}}.evaluations (
    run_id          TEXT NOT NULL,
    as_of           DATE NOT NULL,
    model_version   TEXT NOT NULL,
    role            TEXT NOT NULL CHECK (role IN ('challenger', 'champion', 'baseline')),
    segment         TEXT NOT NULL,
    metric          TEXT NOT NULL,
    value           DOUBLE PRECISION NOT NULL,
    users           INTEGER NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, model_version, role, segment, metric)
);

-- How each challenger compared with the model it was judged against, on the same holdout users:
-- the paired-bootstrap interval of the relative change of evaluation.primary_metric and the
-- per-user values it was computed from (JSON arrays in holdout user order), so it can be recomputed.
CREATE TABLE IF NOT EXISTS {{schema}}.evaluation_comparisons (
    run_id            TEXT NOT NULL,
    as_of             DATE NOT NULL,
    challenger        TEXT NOT NULL,
    reference         TEXT NOT NULL,
    reference_role    TEXT NOT NULL CHECK (reference_role IN ('champion', 'baseline')),
    metric            TEXT NOT NULL,
    users             INTEGER NOT NULL,
    confidence        DOUBLE PRECISION NOT NULL,
    relative_delta    DOUBLE PRECISION NOT NULL,
    ci_low            DOUBLE PRECISION NOT NULL,
    ci_high           DOUBLE PRECISION NOT NULL,
    challenger_mean   DOUBLE PRECISION NOT NULL,
    reference_mean    DOUBLE PRECISION NOT NULL,
    resamples         INTEGER NOT NULL,
    seed              BIGINT NOT NULL,
    challenger_values TEXT NOT NULL,
    reference_values  TEXT NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, challenger, reference_role)
);

CREATE TABLE IF NOT EXISTS {{schema}}.validation_runs (
    run_id          TEXT PRIMARY KEY,
    as_of           DATE NOT NULL,
    interval_events BIGINT NOT NULL,
    success         BOOLEAN NOT NULL,
    docs_uri        TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS {{schema}}.validation_results (
    run_id          TEXT NOT NULL,
    as_of           DATE NOT NULL,
    suite           TEXT NOT NULL,
    expectation     TEXT NOT NULL,
    column_name     TEXT,
    severity        TEXT NOT NULL CHECK (severity IN ('blocking', 'warning', 'info')),
    success         BOOLEAN NOT NULL,
    observed_value  TEXT,
    details         TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS validation_results_run ON {{schema}}.validation_results (run_id);

CREATE TABLE IF NOT EXISTS {{schema}}.publications (
    as_of           DATE PRIMARY KEY,
    run_id          TEXT NOT NULL,
    model_version   TEXT NOT NULL,
    users           INTEGER NOT NULL,
    rows            BIGINT NOT NULL,
    top_k           INTEGER NOT NULL,
    published_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS {{schema}}.recommendations (
    as_of           DATE NOT NULL,
    user_id         TEXT NOT NULL,
    rank            SMALLINT NOT NULL,
    item_id         TEXT NOT NULL,
    score           REAL NOT NULL,
    model_version   TEXT NOT NULL,
    run_id          TEXT NOT NULL,
    reason          TEXT,
    generated_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (as_of, user_id, rank)
) PARTITION BY LIST (as_of);
CREATE INDEX IF NOT EXISTS recommendations_item ON {{schema}}.recommendations (as_of, item_id);

-- The newest complete publication; a publication row and its partition become visible together.
CREATE OR REPLACE VIEW {{schema}}.latest_recommendations AS
SELECT r.*
FROM {{schema}}.recommendations AS r
WHERE r.as_of = (SELECT max(p.as_of) FROM {{schema}}.publications AS p);

-- Top-N neighbours per item (cosine of the champion's item vectors), one partition per as-of date.
CREATE TABLE IF NOT EXISTS {{schema}}.similar_items (
    as_of           DATE NOT NULL,
    item_id         TEXT NOT NULL,
    rank            SMALLINT NOT NULL,
    similar_item_id TEXT NOT NULL,
    score           REAL NOT NULL,
    model_version   TEXT NOT NULL,
    PRIMARY KEY (as_of, item_id, rank)
) PARTITION BY LIST (as_of);

-- The newest complete set of similar items (a partition appears whole, by an atomic swap).
CREATE OR REPLACE VIEW {{schema}}.latest_similar_items AS
SELECT s.*
FROM {{schema}}.similar_items AS s
WHERE s.as_of = (SELECT max(m.as_of) FROM {{schema}}.similar_items AS m);

CREATE OR REPLACE VIEW {{schema}}.champion AS
SELECT * FROM {{schema}}.model_registry WHERE status = 'champion';

-- The champion timeline with each period's end (the next period's start; NULL: the current one).
CREATE OR REPLACE VIEW {{schema}}.champion_timeline AS
SELECT p.champion_from,
       lead(p.champion_from) OVER (ORDER BY p.champion_from) AS champion_to,
       p.model_version, p.decision, p.recorded_at
FROM {{schema}}.champion_periods AS p;

-- Which version of this file the schema was last created or upgraded with (one row). Tasks compare
-- it with the file they ship and run this script only when it differs, so no task takes DDL locks
-- on tables readers are querying (recsys_tasks.data.warehouse.ensure_output_schema).
CREATE TABLE IF NOT EXISTS {{schema}}.schema_version (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    version     TEXT NOT NULL,
    applied_at  TIMESTAMPTZ NOT NULL
);
