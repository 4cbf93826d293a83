-- How each of <versions> was judged, for the registry timeline's deltas: its <metric> on the 'all'
-- segment of a run where it was the challenger, beside the model it was judged against on the SAME
-- holdout (the champion of that run, else most-popular), with the bootstrap interval of the relative
-- change when one was stored. Inputs: expanding <versions>, <metric>. Output oldest run first, and
-- within a run baseline before champion (the caller keeps the last row per version). Read-only.
SELECT c.model_version,
       c.value AS primary_metric,
       r.model_version AS judged_against,
       r.role AS judged_against_role,
       c.run_id AS judged_run_id,
       c.as_of AS judged_as_of,
       r.value AS reference_primary_metric,
       c.value - r.value AS delta,
       COALESCE(k.relative_delta, (c.value - r.value) / NULLIF(r.value, 0)) AS relative_delta,
       k.ci_low AS delta_low,
       k.ci_high AS delta_high,
       k.confidence,
       c.users AS holdout_n
FROM {{schema}}.evaluations AS c
JOIN {{schema}}.evaluations AS r
  ON r.run_id = c.run_id AND r.segment = c.segment AND r.metric = c.metric AND r.role IN ('champion', 'baseline')
LEFT JOIN {{schema}}.evaluation_comparisons AS k
  ON k.run_id = c.run_id AND k.challenger = c.model_version AND k.reference_role = r.role AND k.metric = c.metric
WHERE c.role = 'challenger' AND c.segment = 'all' AND c.metric = :metric AND c.model_version IN :versions
ORDER BY c.as_of, c.created_at, c.run_id, r.role
