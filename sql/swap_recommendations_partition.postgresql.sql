-- Replace the partition of one as-of date with a prepared staging table, atomically: run inside one
-- transaction together with upsert_publication. Readers see the old complete set until commit,
-- the new complete set after. The old partition (if any) was detached and dropped just before.
-- Inputs: identifiers {{schema}}, {{stage}}, {{partition}}; <as_of> inlined as a validated literal.
ALTER TABLE {{schema}}.{{stage}} RENAME TO {{partition}};
ALTER TABLE {{schema}}.recommendations ATTACH PARTITION {{schema}}.{{partition}} FOR VALUES IN (DATE '{{as_of_literal}}');
