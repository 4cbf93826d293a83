-- A fresh staging table for one publication, shaped like the recommendation table.
-- Inputs: identifiers {{schema}}, {{stage}}. Not idempotent by itself: the caller drops a leftover
-- stage of the same name first (drop_stage).
CREATE TABLE {{schema}}.{{stage}} AS SELECT * FROM {{schema}}.recommendations WHERE 0
