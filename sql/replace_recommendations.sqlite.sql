-- SQLite swap: replace one as-of date's rows with the staging rows, inside one transaction (with
-- upsert_publication). Inputs: identifiers {{schema}}, {{stage}}; <as_of> bound.
DELETE FROM {{schema}}.recommendations WHERE as_of = :as_of;
INSERT INTO {{schema}}.recommendations SELECT * FROM {{schema}}.{{stage}};
