-- Warehouse source tables (the warehouse contract) for an embedded SQLite warehouse.
-- Inputs (identifiers, validated and quoted by recsys_tasks.sqlfiles):
--   {{events}}, {{items}}             table names, optionally qualified by an attached database
--   {{events_table}}                  the events table name without its schema (SQLite's CREATE
--                                     INDEX qualifies the index name, not the table)
--   {{events_<field>}}, {{items_<field>}}  the column holding each canonical field
--   {{events_ts_index}}               name of the index on the event timestamp (qualified if needed)
-- Output: the two tables and the timestamp index; existing tables are left as they are.
-- Idempotent: CREATE TABLE / CREATE INDEX IF NOT EXISTS.
-- Timestamps are TEXT in one fixed ISO-8601 UTC format, 'YYYY-MM-DD HH:MM:SS.ffffff+00:00'
-- (always six fractional digits), so text order is time order and pandas parses them back.
-- event_id deliberately has no PRIMARY KEY or UNIQUE constraint (see the PostgreSQL file).
CREATE TABLE IF NOT EXISTS {{events}} (
    {{events_event_id}}   TEXT NOT NULL,
    {{events_user_id}}    TEXT,
    {{events_item_id}}    TEXT,
    {{events_event_type}} TEXT,
    {{events_event_ts}}   TEXT,
    {{events_value}}      REAL,
    {{events_query}}      TEXT,
    {{events_session_id}} TEXT
);

CREATE INDEX IF NOT EXISTS {{events_ts_index}} ON {{events_table}} ({{events_event_ts}});

CREATE TABLE IF NOT EXISTS {{items}} (
    {{items_item_id}}    TEXT PRIMARY KEY,
    {{items_title}}      TEXT,
    {{items_category}}   TEXT,
    {{items_created_at}} TEXT
);
