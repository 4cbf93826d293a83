-- Portable fallback of copy_similar_items_stage for dialects without COPY (executemany).
-- Inputs: {{schema}}, {{stage}}; one parameter set per row.
INSERT INTO {{schema}}.{{stage}} (as_of, item_id, rank, similar_item_id, score, model_version)
VALUES (:as_of, :item_id, :rank, :similar_item_id, :score, :model_version)
