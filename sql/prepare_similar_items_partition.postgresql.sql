-- Make a filled similar-items staging table ready to become the partition of one as-of date: the
-- CHECK lets ATTACH PARTITION skip its validation scan and the primary key is built before any lock.
-- Inputs: identifiers {{schema}}, {{stage}}, {{stage_check}}; <as_of> is inlined by the caller as a
-- validated date literal. Not idempotent (runs once on a fresh stage).
ALTER TABLE {{schema}}.{{stage}} ADD CONSTRAINT {{stage_check}} CHECK (as_of = DATE '{{as_of_literal}}');
ALTER TABLE {{schema}}.{{stage}} ADD PRIMARY KEY (as_of, item_id, rank);
