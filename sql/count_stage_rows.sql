-- Rows and distinct users of a publish's staging table (a shard's, before it is merged).
-- Inputs: identifiers {{schema}}, {{stage}}. Output: one row (n_rows, n_users). Read-only.
SELECT count(*) AS n_rows, count(DISTINCT user_id) AS n_users
FROM {{schema}}.{{stage}}
