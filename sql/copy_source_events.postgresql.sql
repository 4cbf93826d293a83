-- Bulk load of behaviour events into the warehouse events table (synth.load).
-- Inputs: {{events}} and the mapped column names from config; rows in COPY text format on STDIN.
-- Output: the rows appended. Not idempotent (appends); synth.load(replace=True) empties first.
COPY {{events}} (
    {{event_id}}, {{user_id}}, {{item_id}}, {{event_type}},
    {{event_ts}}, {{value}}, {{query}}, {{session_id}}
) FROM STDIN
