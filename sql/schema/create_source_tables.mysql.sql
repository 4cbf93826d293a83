-- Warehouse source tables (the warehouse contract) in MySQL or MariaDB.
-- Inputs (identifiers, validated and quoted by recsys_tasks.sqlfiles):
--   {{events}}, {{items}}             table names, optionally qualified by their database ("db.table")
--   {{events_<field>}}, {{items_<field>}}  the column holding each canonical field
--   {{events_ts_index}}               name of the index on the event timestamp
-- Output: the two tables with the timestamp index; existing tables are left as they are.
-- Idempotent: CREATE TABLE IF NOT EXISTS (the index is declared inline: MySQL has no CREATE INDEX IF NOT EXISTS).
-- TIMESTAMP(6) stores an instant to the microsecond (extraction reads it in a UTC session; its range
-- ends in 2038); DATETIME is naive and needs warehouse.naive_timestamps_are. Ids are VARCHAR (a key
-- cannot be TEXT) in a binary collation: the default *_ci collations compare 'U1' and 'u1' as equal.
-- event_id has no key (see the PostgreSQL file).
CREATE TABLE IF NOT EXISTS {{events}} (
    {{events_event_id}}   VARCHAR(255) NOT NULL,
    {{events_user_id}}    VARCHAR(255),
    {{events_item_id}}    VARCHAR(255),
    {{events_event_type}} VARCHAR(64),
    {{events_event_ts}}   TIMESTAMP(6) NULL,
    {{events_value}}      DOUBLE,
    {{events_query}}      TEXT,
    {{events_session_id}} VARCHAR(255),
    INDEX {{events_ts_index}} ({{events_event_ts}})
) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;

CREATE TABLE IF NOT EXISTS {{items}} (
    {{items_item_id}}    VARCHAR(255) NOT NULL PRIMARY KEY,
    {{items_title}}      TEXT,
    {{items_category}}   VARCHAR(255),
    {{items_created_at}} TIMESTAMP(6) NULL
) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
