-- Warehouse source tables (the warehouse contract) in DuckDB.
-- Inputs (identifiers, validated and quoted by recsys_tasks.sqlfiles):
--   {{events}}, {{items}}             table names, optionally schema-qualified ("schema.table")
--   {{events_<field>}}, {{items_<field>}}  the column holding each canonical field
-- Output: the two tables; existing tables are left as they are. Idempotent: CREATE TABLE IF NOT EXISTS.
-- No index on the event time: DuckDB skips row groups by their min/max zone maps for a range filter,
-- and an ART index would only slow loading. event_id has no key (see the PostgreSQL file).
CREATE TABLE IF NOT EXISTS {{events}} (
    {{events_event_id}}   VARCHAR NOT NULL,
    {{events_user_id}}    VARCHAR,
    {{events_item_id}}    VARCHAR,            -- NULL for search events
    {{events_event_type}} VARCHAR,
    {{events_event_ts}}   TIMESTAMPTZ,        -- an instant; a naive TIMESTAMP needs warehouse.naive_timestamps_are
    {{events_value}}      DOUBLE,
    {{events_query}}      VARCHAR,
    {{events_session_id}} VARCHAR
);

CREATE TABLE IF NOT EXISTS {{items}} (
    {{items_item_id}}    VARCHAR PRIMARY KEY,
    {{items_title}}      VARCHAR,
    {{items_category}}   VARCHAR,
    {{items_created_at}} TIMESTAMPTZ
);
