-- Release the publisher lock lock_publisher took (once per successful try).
-- Inputs: <key>, <day> as in lock_publisher. Output: whether this session held it.
SELECT pg_catalog.pg_advisory_unlock(CAST(:key AS integer), CAST(:day AS integer)) AS unlocked
