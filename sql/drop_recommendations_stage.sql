-- Drop a staging table of recommendations or similar items (leftover of a killed publish, or after
-- the swap). Idempotent.
-- Inputs: identifiers {{schema}}, {{stage}}.
DROP TABLE IF EXISTS {{schema}}.{{stage}}
