-- Behaviour events of one run: every event in [<start>, <end>) (the history window plus the data interval).
-- Inputs: <start>, <end> (bound timestamps); identifiers {{events}} and the mapped column names from config.
-- Output: the canonical event columns, one row per event, ordered by time. Read-only; idempotent.
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
ORDER BY {{event_ts}}
