-- The as-of dates that have rows in one published table (where it is not partitioned). Read-only.
-- Inputs: identifiers {{schema}}, {{table}} (recommendations or similar_items).
SELECT DISTINCT as_of FROM {{schema}}.{{table}}
