-- Behaviour events of one run: every event in [<start>, <end>) (the history window plus the data interval).
-- Inputs: <start>, <end> (bound timestamps); identifiers {{events}} and the mapped column names from config.
-- Output: the canonical event columns, one row per event, grouped by user and time-ordered within a user,
-- so later stages can read the snapshot in chunks of whole users. Read-only; idempotent.
SELECT
    {{event_id}}   AS event_id,
    {{user_id}}    AS user_id,
    {{item_id}}    AS item_id,
    {{event_type}} AS event_type,
    {{event_ts}}   AS event_ts,
    {{value}}      AS value,
    {{query}}      AS query,
    {{session_id}} AS session_id
FROM {{events}}
WHERE {{event_ts}} >= :start
  AND {{event_ts}} < :end
ORDER BY {{user_id}}, {{event_ts}}, {{event_id}}
