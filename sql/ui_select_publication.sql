-- The publication of one as-of date. Inputs: <as_of> (ISO date). Read-only.
SELECT as_of, run_id, model_version, users, rows, top_k, published_at
FROM {{schema}}.publications
WHERE as_of = :as_of
