-- Metrics of the parents of the model versions the registry timeline shows, for the metric deltas
-- of versions whose parent fell outside the timeline's window. Inputs: expanding <versions>. Read-only.
SELECT model_version, metrics
FROM {{schema}}.model_registry
WHERE model_version IN :versions
