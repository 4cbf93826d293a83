-- Retire the current champion (the first half of a promotion; the second half runs in the same
-- transaction). Inputs: <decision>, <now>. Idempotent: with no champion it changes nothing.
UPDATE {{schema}}.model_registry
SET status = 'retired', decision = :decision, status_changed_at = :now
WHERE status = 'champion'
