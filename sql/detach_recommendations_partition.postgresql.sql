-- Detach and drop the existing partition of one as-of date (first half of the swap, same transaction).
-- Inputs: identifiers {{schema}}, {{partition}}.
ALTER TABLE {{schema}}.recommendations DETACH PARTITION {{schema}}.{{partition}};
DROP TABLE {{schema}}.{{partition}};
