-- Metric history of the Recommendations UI page: one metric on the 'all' segment for every model
-- (challenger, champion, baseline) of the newest <limit> evaluation rows.
-- Inputs: <metric>, <limit>. Output newest first. Read-only.
SELECT as_of, run_id, role, model_version, value, users
FROM {{schema}}.evaluations
WHERE segment = 'all' AND metric = :metric
ORDER BY as_of DESC, run_id DESC, role
LIMIT :limit
