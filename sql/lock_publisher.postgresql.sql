-- Take the publisher lock of one output table and as-of date for this session, if no other session
-- holds it (a session-level advisory lock: released by unlock_publisher, or when the session ends, so a
-- killed publish never leaves it behind). Inputs: <key> (the schema and table, hashed), <day> (YYYYMMDD).
-- Output: true when this session now holds it. Not idempotent: each success must be unlocked once.
SELECT pg_catalog.pg_try_advisory_lock(CAST(:key AS integer), CAST(:day AS integer)) AS locked
