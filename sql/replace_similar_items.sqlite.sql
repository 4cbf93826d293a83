-- SQLite swap: replace one as-of date's similar items with the staging rows inside one transaction.
-- Inputs: identifiers {{schema}}, {{stage}}; <as_of> bound. Idempotent for the same staging rows.
DELETE FROM {{schema}}.similar_items WHERE as_of = :as_of;
INSERT INTO {{schema}}.similar_items SELECT * FROM {{schema}}.{{stage}};
