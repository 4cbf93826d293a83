-- One metric of one model on one holdout segment of a run. Inputs: bound columns; one set per row.
-- Not idempotent alone: delete_evaluation runs first in the same transaction.
INSERT INTO {{schema}}.evaluations (run_id, as_of, model_version, role, segment, metric, value, users, created_at)
VALUES (:run_id, :as_of, :model_version, :role, :segment, :metric, :value, :users, :created_at)
