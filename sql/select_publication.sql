-- The publication of one as-of date, if it exists (the freshness check, the UI's as-of picker). Read-only.
-- Inputs: <as_of> (ISO date). Output: at most one row.
SELECT as_of, run_id, model_version, users, rows, top_k, published_at
FROM {{schema}}.publications
WHERE as_of = :as_of
