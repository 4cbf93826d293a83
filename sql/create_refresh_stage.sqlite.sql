-- Connection-private staging table of one refresh, shaped like the recommendation table (dropped by
-- drop_refresh_stage in the same transaction). Inputs: identifier {{schema}}.
DROP TABLE IF EXISTS temp.recsys_refresh_stage;
CREATE TEMP TABLE recsys_refresh_stage AS SELECT * FROM {{schema}}.recommendations WHERE 0;
