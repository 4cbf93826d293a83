-- Session-private staging table of one refresh, shaped like the recommendation table. It outlives the
-- transaction that loads it, so the replace can be retried on the same connection without reloading;
-- drop_refresh_stage drops it (a leftover of the session's earlier refresh is dropped here first).
-- Inputs: identifier {{schema}}.
DROP TABLE IF EXISTS pg_temp.recsys_refresh_stage;
CREATE TEMP TABLE recsys_refresh_stage (LIKE {{schema}}.recommendations INCLUDING DEFAULTS);
