-- Record that retention deleted a model version's directory; the registry row itself stays (history).
-- Inputs: identifier {{schema}}; <model_version>, <now>. Idempotent: the first deletion time is kept.
UPDATE {{schema}}.model_registry
SET artifact_deleted_at = :now
WHERE model_version = :model_version AND artifact_deleted_at IS NULL
