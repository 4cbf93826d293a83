-- An item's similar items of one as-of date with their titles from the warehouse catalogue.
-- Inputs: <as_of>, <item_id>, <limit>; identifiers items, item_id, title, category. Read-only.
SELECT s.rank, s.similar_item_id AS item_id, i.{{title}} AS title, i.{{category}} AS category,
       s.score, s.model_version
FROM {{schema}}.similar_items AS s
LEFT JOIN {{items}} AS i ON i.{{item_id}} = s.similar_item_id
WHERE s.as_of = :as_of AND s.item_id = :item_id
ORDER BY s.rank
LIMIT :limit
