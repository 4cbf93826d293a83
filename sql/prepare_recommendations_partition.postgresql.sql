-- Make a filled staging table ready to become the partition of one as-of date: the CHECK lets
-- ATTACH PARTITION skip its validation scan and the primary key is built before any lock is taken.
-- Inputs: identifiers {{schema}}, {{stage}}; <as_of> is inlined by the caller as a validated date literal.
ALTER TABLE {{schema}}.{{stage}} ADD CONSTRAINT {{stage_check}} CHECK (as_of = DATE '{{as_of_literal}}');
ALTER TABLE {{schema}}.{{stage}} ADD PRIMARY KEY (as_of, user_id, rank);
CREATE INDEX ON {{schema}}.{{stage}} (as_of, item_id);
