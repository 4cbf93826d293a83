-- The newest publication (the one latest_recommendations shows). Read-only.
SELECT as_of, run_id, model_version, users, rows, top_k
FROM {{schema}}.publications
ORDER BY as_of DESC
LIMIT 1
