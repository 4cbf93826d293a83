-- Histories of the users a refresh re-scores: every item event in [<history_start>, <end>) of each user
-- who has an item event in [<since>, <end>) (the users with new behaviour).
-- Inputs: <history_start>, <since>, <end> (bound timestamps); identifiers {{events}} and the mapped
-- column names from config. Output: canonical event columns, ordered by user and time. Read-only; idempotent.
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
WHERE {{event_ts}} >= :history_start
  AND {{event_ts}} < :end
  AND {{item_id}} IS NOT NULL
  AND {{user_id}} IN (
      SELECT {{user_id}} FROM {{events}}
      WHERE {{event_ts}} >= :since AND {{event_ts}} < :end AND {{item_id}} IS NOT NULL
  )
ORDER BY {{user_id}}, {{event_ts}}
