-- Record a run's validation verdict and interval volume (the volume history later runs compare
-- against). Inputs: <run_id>, <as_of>, <interval_events>, <success>, <docs_uri>, <created_at>. Idempotent.
INSERT INTO {{schema}}.validation_runs (run_id, as_of, interval_events, success, docs_uri, created_at)
VALUES (:run_id, :as_of, :interval_events, :success, :docs_uri, :created_at)
ON CONFLICT (run_id) DO UPDATE SET
    as_of = excluded.as_of,
    interval_events = excluded.interval_events,
    success = excluded.success,
    docs_uri = excluded.docs_uri,
    created_at = excluded.created_at
