-- Bulk load of behaviour events into the warehouse events table (sources.load).
-- Inputs: {{events}} and the mapped column names from config; rows in COPY binary format on STDIN
-- (data.writer), so the columns must have the contract's types.
-- Output: the rows appended. Not idempotent (appends); sources.load(replace=True) empties first.
COPY {{events}} (
    {{event_id}}, {{user_id}}, {{item_id}}, {{event_type}},
    {{event_ts}}, {{value}}, {{query}}, {{session_id}}
) FROM STDIN (FORMAT BINARY)
