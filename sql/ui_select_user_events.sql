-- One user's newest behaviour events in [<start>, <end>) (the days before a publication's cutoff),
-- with the item titles from the catalogue, for judging that user's recommendations.
-- Inputs: <user_id>, <start>, <end> (bound timestamps), <limit>; identifiers events, items and the
-- mapped column names from config (ev_* of the events table, item_id/title/category of the items
-- table). Output newest first. Read-only.
SELECT e.{{ev_event_ts}} AS event_ts, e.{{ev_event_type}} AS event_type, e.{{ev_item_id}} AS item_id,
       i.{{title}} AS title, i.{{category}} AS category, e.{{ev_value}} AS value, e.{{ev_query}} AS query
FROM {{events}} AS e
LEFT JOIN {{items}} AS i ON i.{{item_id}} = e.{{ev_item_id}}
WHERE e.{{ev_user_id}} = :user_id AND e.{{ev_event_ts}} >= :start AND e.{{ev_event_ts}} < :end
ORDER BY e.{{ev_event_ts}} DESC
LIMIT :limit
