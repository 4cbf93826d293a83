-- The publication a refresh rewrites, locked until the refresh commits (a concurrent publish or
-- refresh of the same as-of date waits). Inputs: <as_of>; identifier {{schema}}. Read-only.
SELECT as_of, run_id, model_version, users, rows, top_k
FROM {{schema}}.publications
WHERE as_of = :as_of
FOR UPDATE
