-- Delete one as-of date's rows of a published table that is not partitioned (SQLite); PostgreSQL drops
-- the partition instead (detach_<table>_partition). Inputs: identifiers {{schema}}, {{table}}; <as_of>.
-- Idempotent.
DELETE FROM {{schema}}.{{table}} WHERE as_of = :as_of
