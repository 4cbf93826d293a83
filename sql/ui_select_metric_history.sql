-- Metric history of the Recommendations UI page: one metric on one segment for every model
-- (challenger, champion, baseline) of the newest <limit> evaluation rows, with the number of
-- holdout users behind each value and whether a challenger was promoted by that run (a champion
-- period of that version starting on the run's as-of date).
-- Inputs: <metric>, <segment>, <limit>. Output newest first. Read-only.
SELECT e.as_of, e.run_id, e.role, e.model_version, e.value, e.users,
       CASE WHEN e.role = 'challenger' AND EXISTS (
                SELECT 1 FROM {{schema}}.champion_periods AS p
                WHERE p.model_version = e.model_version AND p.champion_from = e.as_of)
            THEN 1 ELSE 0 END AS promoted
FROM {{schema}}.evaluations AS e
WHERE e.segment = :segment AND e.metric = :metric
ORDER BY e.as_of DESC, e.run_id DESC, e.role
LIMIT :limit
