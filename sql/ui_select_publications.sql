-- The newest <limit> publications (as-of date, model, users) for the page's as-of picker.
-- Inputs: <limit>. Output newest first. Read-only.
SELECT as_of, run_id, model_version, users, rows, top_k, published_at
FROM {{schema}}.publications
ORDER BY as_of DESC
LIMIT :limit
