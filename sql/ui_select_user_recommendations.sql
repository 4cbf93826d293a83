-- One user's published top-K of one as-of date with the item titles from the warehouse catalogue
-- (mapped column names from config). Uses the primary key (as_of, user_id, rank).
-- Inputs: <as_of>, <user_id>; identifiers items, item_id, title, category. Read-only.
SELECT r.rank, r.item_id, i.{{title}} AS title, i.{{category}} AS category, r.score, r.reason,
       r.model_version, r.run_id, r.generated_at
FROM {{schema}}.recommendations AS r
LEFT JOIN {{items}} AS i ON i.{{item_id}} = r.item_id
WHERE r.as_of = :as_of AND r.user_id = :user_id
ORDER BY r.rank
