-- The partitions of one partitioned published table and their bounds (FOR VALUES IN ('YYYY-MM-DD')).
-- Inputs: <parent>, the table as a quoted "schema"."table" name. Read-only.
SELECT c.relname AS partition, pg_catalog.pg_get_expr(c.relpartbound, c.oid) AS bound
FROM pg_catalog.pg_inherits AS i
JOIN pg_catalog.pg_class AS c ON c.oid = i.inhrelid
WHERE i.inhparent = to_regclass(:parent)
