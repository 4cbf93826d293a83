-- The publication a refresh rewrites (SQLite serialises writers itself, so no row lock).
-- Inputs: <as_of>; identifier {{schema}}. Read-only.
SELECT as_of, run_id, model_version, users, rows, top_k
FROM {{schema}}.publications
WHERE as_of = :as_of
