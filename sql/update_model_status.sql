-- Move one model version to a new status and record why.
-- Inputs: <model_version>, <status>, <decision>, <now>. Idempotent (same inputs, same row).
UPDATE {{schema}}.model_registry
SET status = :status, decision = :decision, status_changed_at = :now
WHERE model_version = :model_version
