-- Detach and drop the existing similar-items partition of one as-of date (first half of the swap,
-- same transaction). Inputs: identifiers {{schema}}, {{partition}}.
ALTER TABLE {{schema}}.similar_items DETACH PARTITION {{schema}}.{{partition}};
DROP TABLE {{schema}}.{{partition}};
