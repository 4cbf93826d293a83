-- Bulk-load similar-item rows into a staging table with COPY (psycopg 3 streams them in binary format). Inputs: {{schema}}, {{stage}}.
COPY {{schema}}.{{stage}} (as_of, item_id, rank, similar_item_id, score, model_version) FROM STDIN (FORMAT BINARY)
