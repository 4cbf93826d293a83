-- Empty the warehouse source tables before a demo reload (synth.load(replace=True)).
-- Inputs: {{events}}, {{items}} (optionally qualified table names).
-- Output: both tables empty. Idempotent. Runs inside the load's transaction.
DELETE FROM {{events}};
DELETE FROM {{items}};
