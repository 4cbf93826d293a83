-- Every publication (as-of date, the run it was built by, its model), oldest first. Read-only.
-- Inputs: identifier {{schema}}.
SELECT as_of, run_id, model_version
FROM {{schema}}.publications
ORDER BY as_of
