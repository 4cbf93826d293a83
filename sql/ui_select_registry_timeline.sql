-- The registry timeline of the Recommendations UI page: the <limit> model versions of the newest
-- as-of dates (a backfilled version sorts by the date it was trained for, not when it was made),
-- with their parent, status, decision, metrics (JSON) and the Airflow DAG and run that trained them.
-- Inputs: <limit>. Output newest as-of first. Read-only.
SELECT model_version, parent_version, kind, status, as_of, data_start, data_end, metrics,
       holdout_users, decision, created_at, status_changed_at, dag_id, run_id
FROM {{schema}}.model_registry
ORDER BY as_of DESC, created_at DESC, model_version DESC
LIMIT :limit
