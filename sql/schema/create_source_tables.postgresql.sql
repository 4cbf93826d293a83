-- Warehouse source tables (the warehouse contract): behaviour events and the item catalogue.
-- Inputs (identifiers, validated and quoted by recsys_tasks.sqlfiles):
--   {{events}}, {{items}}             table names, optionally schema-qualified ("schema.table")
--   {{events_<field>}}                the events column holding each canonical field
--   {{items_<field>}}                 the items column holding each canonical field
--   {{events_ts_index}}               name of the index on the event timestamp (unqualified)
-- Output: the two tables and the timestamp index; existing tables are left as they are.
-- Idempotent: CREATE TABLE / CREATE INDEX IF NOT EXISTS.
-- event_id deliberately has no PRIMARY KEY or UNIQUE constraint: the warehouse is the user's,
-- double loads happen there, and catching duplicate event ids is the validation stage's job.
CREATE TABLE IF NOT EXISTS {{events}} (
    {{events_event_id}}   TEXT NOT NULL,
    {{events_user_id}}    TEXT,
    {{events_item_id}}    TEXT,               -- NULL for search events
    {{events_event_type}} TEXT,
    {{events_event_ts}}   TIMESTAMPTZ,
    {{events_value}}      DOUBLE PRECISION,   -- price for add_to_cart/purchase, 1..5 for rate
    {{events_query}}      TEXT,               -- search text for search events
    {{events_session_id}} TEXT
);

CREATE INDEX IF NOT EXISTS {{events_ts_index}} ON {{events}} ({{events_event_ts}});

CREATE TABLE IF NOT EXISTS {{items}} (
    {{items_item_id}}    TEXT PRIMARY KEY,
    {{items_title}}      TEXT,
    {{items_category}}   TEXT,
    {{items_created_at}} TIMESTAMPTZ
);
