-- The newest <limit> validation runs (verdict, interval volume, Data Docs location) for the
-- Recommendations UI page. Inputs: <limit>. Read-only.
SELECT run_id, as_of, interval_events, success, docs_uri, created_at
FROM {{schema}}.validation_runs
ORDER BY as_of DESC, created_at DESC
LIMIT :limit
