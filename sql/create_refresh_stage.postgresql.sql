-- Session-private staging table of one refresh, shaped like the recommendation table; dropped when
-- the refresh's transaction ends. Inputs: identifier {{schema}}. Run inside the refresh's transaction.
CREATE TEMP TABLE recsys_refresh_stage (LIKE {{schema}}.recommendations INCLUDING DEFAULTS) ON COMMIT DROP
