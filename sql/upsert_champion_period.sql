-- Start a champion period at <champion_from> (a promotion for that as-of date); a later promotion
-- for the same date replaces it. Inputs: <champion_from> (ISO date), <model_version>, <decision>,
-- <now>. Idempotent.
INSERT INTO {{schema}}.champion_periods (champion_from, model_version, decision, recorded_at)
VALUES (:champion_from, :model_version, :decision, :now)
ON CONFLICT (champion_from) DO UPDATE
SET model_version = excluded.model_version, decision = excluded.decision, recorded_at = excluded.recorded_at
