-- Record (or replace) the publication of one as-of date; runs in the swap's transaction so the
-- latest_recommendations view switches exactly when the rows do. Idempotent.
-- Inputs: <as_of>, <run_id>, <model_version>, <users>, <rows>, <top_k>, <published_at>.
INSERT INTO {{schema}}.publications (as_of, run_id, model_version, users, rows, top_k, published_at)
VALUES (:as_of, :run_id, :model_version, :users, :rows, :top_k, :published_at)
ON CONFLICT (as_of) DO UPDATE SET
    run_id = excluded.run_id,
    model_version = excluded.model_version,
    users = excluded.users,
    rows = excluded.rows,
    top_k = excluded.top_k,
    published_at = excluded.published_at
