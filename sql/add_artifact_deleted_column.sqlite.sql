-- Add model_registry.artifact_deleted_at to an output file created before the column existed (SQLite
-- has no ADD COLUMN IF NOT EXISTS, so cleanup runs this only when the column is missing).
-- Inputs: identifier {{schema}}. Not idempotent: check the column first.
ALTER TABLE {{schema}}.model_registry ADD COLUMN artifact_deleted_at TEXT
