-- How many rows (and users) of the publication of <as_of> a refresh replaces: those of the users in
-- its staging table. Inputs: <as_of>; identifier {{schema}}. Read-only.
SELECT count(*) AS n_rows, count(DISTINCT user_id) AS n_users
FROM {{schema}}.recommendations
WHERE as_of = :as_of
  AND user_id IN (SELECT user_id FROM recsys_refresh_stage)
