-- Insert the refreshed users' new rows (second half of the replace). Inputs: identifier {{schema}}.
INSERT INTO {{schema}}.recommendations (as_of, user_id, rank, item_id, score, model_version, run_id, reason, generated_at)
SELECT as_of, user_id, rank, item_id, score, model_version, run_id, reason, generated_at
FROM recsys_refresh_stage
