-- Record the version of sql/schema/create_output_tables just applied, in the DDL's transaction.
-- Inputs: identifier {{schema}}; <version>, <applied_at>. Idempotent.
INSERT INTO {{schema}}.schema_version (id, version, applied_at)
VALUES (1, :version, :applied_at)
ON CONFLICT (id) DO UPDATE SET version = excluded.version, applied_at = excluded.applied_at
