-- Which metrics and segments the evaluations hold, for the metric chart's selectors.
-- Inputs: none. Output one row per (segment, metric), sorted. Read-only.
SELECT DISTINCT segment, metric
FROM {{schema}}.evaluations
ORDER BY segment, metric
