-- Delete the rows of the refreshed users from the publication of <as_of> (first half of the
-- refresh's replace; same transaction as insert_refreshed_rows). Inputs: <as_of>; identifier {{schema}}.
DELETE FROM {{schema}}.recommendations
WHERE as_of = :as_of
  AND user_id IN (SELECT user_id FROM recsys_refresh_stage)
