-- One expectation outcome of a run's validation. Inputs: bound columns; one set per row.
-- Not idempotent alone: delete_validation_results runs first in the same transaction.
INSERT INTO {{schema}}.validation_results (run_id, as_of, suite, expectation, column_name, severity, success, observed_value, details, created_at)
VALUES (:run_id, :as_of, :suite, :expectation, :column_name, :severity, :success, :observed_value, :details, :created_at)
