-- How many users have an item in their published top-K on one as-of date and its best rank
-- (index recommendations_item). Inputs: <as_of>, <item_id>. Read-only.
SELECT count(*) AS users, min(rank) AS best_rank
FROM {{schema}}.recommendations
WHERE as_of = :as_of AND item_id = :item_id
