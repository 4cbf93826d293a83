-- Tables of our output schema whose name looks like a publish's staging table (<table>_stage_<YYYYMMDD>);
-- the caller keeps only exact matches of that pattern. Inputs: <schema> (bound), <pattern> (a LIKE
-- pattern, "\" escapes). Read-only.
SELECT table_name AS name
FROM information_schema.tables
WHERE table_schema = :schema
  AND table_type = 'BASE TABLE'
  AND table_name LIKE :pattern ESCAPE '\'
ORDER BY table_name
