-- Remove a challenger's comparisons of a run before they are written again (task retries).
-- Inputs: <run_id>, <challenger>. Idempotent.
DELETE FROM {{schema}}.evaluation_comparisons
WHERE run_id = :run_id AND challenger = :challenger
