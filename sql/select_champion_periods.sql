-- The whole champion timeline, oldest period first; champion_to is NULL for the current one.
-- Inputs: none. Read-only.
SELECT champion_from, champion_to, model_version, decision
FROM {{schema}}.champion_timeline
ORDER BY champion_from
