-- One challenger-vs-reference comparison of a run (interval and per-user values).
-- Inputs: bound columns. Not idempotent alone: delete_evaluation_comparisons runs first in the
-- same transaction.
INSERT INTO {{schema}}.evaluation_comparisons (
    run_id, as_of, challenger, reference, reference_role, metric, users, confidence, relative_delta,
    ci_low, ci_high, challenger_mean, reference_mean, resamples, seed, challenger_values, reference_values,
    created_at
) VALUES (
    :run_id, :as_of, :challenger, :reference, :reference_role, :metric, :users, :confidence, :relative_delta,
    :ci_low, :ci_high, :challenger_mean, :reference_mean, :resamples, :seed, :challenger_values,
    :reference_values, :created_at
)
