-- Drop a publish's staging table (of recommendations or of similar items): the leftover of a killed
-- publish, or the stage after the swap. Idempotent.
-- Inputs: identifiers {{schema}}, {{stage}}.
DROP TABLE IF EXISTS {{schema}}.{{stage}}
