-- Bulk-load a refresh's rows into its staging table with COPY (psycopg 3 streams them in binary format). No inputs.
COPY pg_temp.recsys_refresh_stage (as_of, user_id, rank, item_id, score, model_version, run_id, reason, generated_at) FROM STDIN (FORMAT BINARY)
