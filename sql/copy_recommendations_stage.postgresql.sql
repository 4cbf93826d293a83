-- Bulk-load rows into a staging table with COPY (psycopg 3 streams them in binary format). Inputs: {{schema}}, {{stage}}.
COPY {{schema}}.{{stage}} (as_of, user_id, rank, item_id, score, model_version, run_id, reason, generated_at) FROM STDIN (FORMAT BINARY)
