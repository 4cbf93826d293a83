-- Give up waiting for a lock after <timeout> (e.g. '5s', '500ms') for the rest of this transaction, so
-- a step that needs a strong lock (retention's partition drop, a publish's swap) never queues readers
-- behind a long query for long. Inputs: <timeout>. Idempotent.
SELECT set_config('lock_timeout', :timeout, true)
