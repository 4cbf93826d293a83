-- The version of sql/schema/create_output_tables the output schema was last created or upgraded with.
-- Inputs: identifier {{schema}}. Output: at most one row (version). Read-only.
SELECT version FROM {{schema}}.schema_version WHERE id = 1
