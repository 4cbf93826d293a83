-- The primary metric of every model evaluated in the runs of the last <days> as-of dates, for the
-- run report and the UI. Inputs: <metric>, <since> (ISO date). Read-only.
SELECT as_of, role, model_version, value
FROM {{schema}}.evaluations
WHERE segment = 'all' AND metric = :metric AND as_of >= :since
ORDER BY as_of, role
