-- Replace the similar-items partition of one as-of date with a prepared staging table, atomically
-- (one transaction with detach_similar_items_partition). Readers of latest_similar_items see the old
-- complete set until commit, the new complete set after.
-- Inputs: identifiers {{schema}}, {{stage}}, {{partition}}; <as_of> inlined as a validated literal.
ALTER TABLE {{schema}}.{{stage}} RENAME TO {{partition}};
ALTER TABLE {{schema}}.similar_items ATTACH PARTITION {{schema}}.{{partition}} FOR VALUES IN (DATE '{{as_of_literal}}');
