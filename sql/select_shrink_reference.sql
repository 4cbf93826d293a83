-- The publication a new publication of <as_of> is compared with before it may replace anything: the
-- one of the newest earlier as-of date (none for the first date, so a backfill's first day is not
-- compared). Inputs: <as_of>; identifier {{schema}}. Output: at most one row (as_of, users, rows). Read-only.
SELECT as_of, users, rows
FROM {{schema}}.publications
WHERE as_of < :as_of
ORDER BY as_of DESC
LIMIT 1
