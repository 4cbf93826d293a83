-- Remove a run's validation outcomes before they are written again (task retries). Inputs: <run_id>.
DELETE FROM {{schema}}.validation_results WHERE run_id = :run_id
