-- The publication of one as-of date, if it exists (the freshness check). Read-only.
-- Inputs: <as_of> (ISO date). Output: at most one row.
SELECT as_of, run_id, model_version, users, rows, published_at
FROM {{schema}}.publications
WHERE as_of = :as_of
