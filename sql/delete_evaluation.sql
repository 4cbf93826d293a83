-- Remove one model's evaluation rows of a run before they are written again (task retries).
-- Inputs: <run_id>, <model_version>, <role>. Idempotent.
DELETE FROM {{schema}}.evaluations
WHERE run_id = :run_id AND model_version = :model_version AND role = :role
