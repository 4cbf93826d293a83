-- Behaviour events of one user shard of a run: the events in [<start>, <end>) of the users whose shard is <shard>.
-- Inputs: <start>, <end> (bound timestamps), <shard>, <shards> (integers, 0 <= shard < shards); identifiers
-- {{events}} and the mapped column names from config.
-- A user's shard is the first 4 bytes of md5(user id as text), big-endian, mod <shards>: the same as
-- recsys_tasks.data.shards.shard_of, so the warehouse splits the window and each mapped extract task
-- streams only its own users. Events without a user go to shard 0, so validation still sees them.
-- (recsys_user_shard is registered on every SQLite connection by data.warehouse.create_engine.)
-- Output: the canonical event columns, grouped by user and time-ordered within a user. Read-only; idempotent.
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
  AND COALESCE(recsys_user_shard(CAST({{user_id}} AS TEXT), :shards), 0) = :shard
ORDER BY {{user_id}}, {{event_ts}}, {{event_id}}
