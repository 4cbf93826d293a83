-- The Alembic revision the output schema is at (recsys_tasks/data/migrations; its version table).
-- Inputs: identifier {{schema}}. Output: at most one row (version_num). Read-only.
SELECT version_num FROM {{schema}}.alembic_version
