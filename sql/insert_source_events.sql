-- Append behaviour events to the warehouse events table (executemany; dialects without COPY).
-- Inputs: {{events}} and the mapped column names from config; bound values named by canonical field.
-- Output: the rows appended. Not idempotent; synth.load(replace=True) empties first.
INSERT INTO {{events}} (
    {{event_id}}, {{user_id}}, {{item_id}}, {{event_type}},
    {{event_ts}}, {{value}}, {{query}}, {{session_id}}
) VALUES (:event_id, :user_id, :item_id, :event_type, :event_ts, :value, :query, :session_id)
