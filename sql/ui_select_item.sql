-- One catalogue item by id (mapped column names from config). Inputs: <item_id>;
-- identifiers items, item_id, title, category. Read-only.
SELECT {{item_id}} AS item_id, {{title}} AS title, {{category}} AS category
FROM {{items}}
WHERE {{item_id}} = :item_id
