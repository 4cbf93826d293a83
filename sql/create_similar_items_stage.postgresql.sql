-- A fresh staging table for one as-of date's similar items, shaped like the similar_items table.
-- Inputs: identifiers {{schema}}, {{stage}}. Not idempotent by itself: the caller drops a leftover
-- stage of the same name first (drop_stage).
CREATE TABLE {{schema}}.{{stage}} (LIKE {{schema}}.similar_items INCLUDING DEFAULTS)
