-- The newest publication (the one latest_recommendations shows), with its time. Read-only.
SELECT as_of, run_id, model_version, users, rows, top_k, published_at
FROM {{schema}}.publications
ORDER BY as_of DESC
LIMIT 1
