-- Interval volumes of the latest successful validations before this as-of date, one per date
-- (the newest run of each date), newest first. Inputs: <as_of>, <limit>. Read-only.
SELECT as_of, max(interval_events) AS interval_events
FROM {{schema}}.validation_runs
WHERE success AND as_of < :as_of
GROUP BY as_of
ORDER BY as_of DESC
LIMIT :limit
