-- Empty the warehouse source tables before a demo reload (synth.load(replace=True)).
-- Inputs: {{events}}, {{items}} (optionally schema-qualified table names).
-- Output: both tables empty. Idempotent. Runs inside the load's transaction, so readers see the
-- old rows or the new ones, never an empty table.
TRUNCATE {{events}}, {{items}};
