-- Tables of our output schema (the attached database {{schema}}) whose name looks like a publish's
-- staging table (<table>_stage_<YYYYMMDD>); the caller keeps only exact matches of that pattern.
-- Inputs: identifier {{schema}}; <pattern> (a LIKE pattern, "\" escapes). Read-only.
SELECT name
FROM {{schema}}.sqlite_master
WHERE type = 'table'
  AND name LIKE :pattern ESCAPE '\'
ORDER BY name
