-- Portable load of a refresh's rows into its staging table (chunked executemany).
-- Inputs: one row of the recommendation table as bound parameters.
INSERT INTO recsys_refresh_stage (as_of, user_id, rank, item_id, score, model_version, run_id, reason, generated_at)
VALUES (:as_of, :user_id, :rank, :item_id, :score, :model_version, :run_id, :reason, :generated_at)
