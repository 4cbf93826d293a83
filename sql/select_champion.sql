-- The current champion's registry row (at most one: a unique partial index enforces it). Read-only.
SELECT model_version, parent_version, kind, status, dag_id, run_id, as_of, data_start, data_end,
       artifact_uri, checksum, config, metrics, holdout_users, decision, created_at, status_changed_at
FROM {{schema}}.model_registry
WHERE status = 'champion'
