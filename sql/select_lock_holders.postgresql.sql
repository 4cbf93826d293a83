-- Other sessions' transactions holding a granted lock on <relations> in one of <modes>: those a lock a
-- publish step is about to request would wait for, while every new reader queues behind the request.
-- A publish looks before it asks. Inputs: <relations> (text[] of quoted "schema"."table" names; a
-- missing table matches nothing), <modes> (text[] of pg_locks modes that conflict). Read-only.
SELECT DISTINCT l.pid, l.virtualtransaction
FROM pg_catalog.pg_locks AS l
WHERE l.locktype = 'relation'
  AND l.granted
  AND l.pid <> pg_catalog.pg_backend_pid()
  AND l.database = (SELECT d.oid FROM pg_catalog.pg_database AS d WHERE d.datname = pg_catalog.current_database())
  AND l.relation IN (SELECT pg_catalog.to_regclass(r) FROM unnest(CAST(:relations AS text[])) AS r)
  AND l.mode = ANY (CAST(:modes AS text[]))
