-- Model versions whose directory retention already deleted. Read-only.
-- Inputs: identifier {{schema}}.
SELECT model_version FROM {{schema}}.model_registry WHERE artifact_deleted_at IS NOT NULL
