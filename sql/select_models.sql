-- Every registered model, newest first. Read-only.
SELECT model_version, parent_version, kind, status, dag_id, run_id, as_of, data_start, data_end,
       artifact_uri, checksum, config, metrics, holdout_users, decision, created_at, status_changed_at
FROM {{schema}}.model_registry
ORDER BY created_at DESC, model_version DESC
