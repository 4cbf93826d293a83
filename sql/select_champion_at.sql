-- The champion of one as-of date: the version of the newest champion period starting on or before
-- it (see champion_periods). Inputs: <as_of> (ISO date). Output: zero or one registry row. Read-only.
SELECT r.model_version, r.parent_version, r.kind, r.status, r.dag_id, r.run_id, r.as_of, r.data_start,
       r.data_end, r.artifact_uri, r.checksum, r.config, r.metrics, r.holdout_users, r.decision,
       r.created_at, r.status_changed_at
FROM {{schema}}.champion_periods AS p
JOIN {{schema}}.model_registry AS r ON r.model_version = p.model_version
WHERE p.champion_from <= :as_of
ORDER BY p.champion_from DESC
LIMIT 1
