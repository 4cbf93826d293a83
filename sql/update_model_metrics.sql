-- Store a model's holdout metrics of the run that evaluated it as challenger.
-- Inputs: <model_version>, <metrics> (JSON text), <holdout_users>. Idempotent.
UPDATE {{schema}}.model_registry
SET metrics = :metrics, holdout_users = :holdout_users
WHERE model_version = :model_version
