-- Forget the publication of one as-of date (retention), in the transaction that drops its rows.
-- Inputs: identifier {{schema}}; <as_of>. Idempotent.
DELETE FROM {{schema}}.publications WHERE as_of = :as_of
