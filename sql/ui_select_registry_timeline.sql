-- The registry timeline of the Recommendations UI page: the newest <limit> model versions with
-- their parent, status, decision and metrics (JSON). Inputs: <limit>. Read-only.
SELECT model_version, parent_version, kind, status, as_of, data_start, data_end, metrics,
       holdout_users, decision, created_at, status_changed_at
FROM {{schema}}.model_registry
ORDER BY created_at DESC, model_version DESC
LIMIT :limit
