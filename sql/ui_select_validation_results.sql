-- Every expectation outcome of one validation run, failures first. Inputs: <run_id>. Read-only.
SELECT suite, expectation, column_name, severity, success, observed_value, details
FROM {{schema}}.validation_results
WHERE run_id = :run_id
ORDER BY success, CASE severity WHEN 'blocking' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END, suite, expectation
