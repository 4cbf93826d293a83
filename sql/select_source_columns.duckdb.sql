-- Columns of one source table (or view) and their types, on DuckDB: duckdb_engine's SQLAlchemy reflection
-- queries PostgreSQL catalog tables DuckDB does not have, so the standard information schema is read instead.
-- Inputs: <schema> (bound; NULL: the connection's current schema), <table> (bound).
-- Output: column_name, data_type (e.g. 'TIMESTAMP WITH TIME ZONE'), in column order; no rows: no such table.
-- Read-only; idempotent.
SELECT column_name, data_type
FROM information_schema.columns
WHERE table_catalog = current_database()
  AND table_schema = COALESCE(CAST(:schema AS VARCHAR), current_schema())
  AND table_name = :table
ORDER BY ordinal_position
