-- The comparisons a run stored for its challenger (to recompute or show an interval).
-- Inputs: <run_id>, <challenger>. Read-only.
SELECT run_id, as_of, challenger, reference, reference_role, metric, users, confidence, relative_delta,
       ci_low, ci_high, challenger_mean, reference_mean, resamples, seed, challenger_values, reference_values
FROM {{schema}}.evaluation_comparisons
WHERE run_id = :run_id AND challenger = :challenger
ORDER BY reference_role
