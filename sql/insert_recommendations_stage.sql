-- Portable fallback of copy_recommendations_stage for dialects without COPY (executemany).
-- Inputs: {{schema}}, {{stage}}; one parameter set per row.
INSERT INTO {{schema}}.{{stage}} (as_of, user_id, rank, item_id, score, model_version, run_id, reason, generated_at)
VALUES (:as_of, :user_id, :rank, :item_id, :score, :model_version, :run_id, :reason, :generated_at)
