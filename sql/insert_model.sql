-- Register a trained model version (status 'candidate').
-- Inputs: every column of model_registry as bound parameters (JSON as text, timestamps as ISO text).
-- Idempotent: a version is immutable, so registering it again changes nothing.
INSERT INTO {{schema}}.model_registry (
    model_version, parent_version, kind, status, dag_id, run_id, as_of, data_start, data_end,
    artifact_uri, checksum, config, metrics, holdout_users
) VALUES (
    :model_version, :parent_version, :kind, 'candidate', :dag_id, :run_id, :as_of, :data_start, :data_end,
    :artifact_uri, :checksum, :config, :metrics, :holdout_users
)
ON CONFLICT (model_version) DO NOTHING
