-- The newest publication's top 5 for three users, with item titles: what a service reads each morning.
-- Runs as-is on PostgreSQL and on the embedded SQLite warehouse (output schema "recsys").
SELECT r.user_id, r.rank, r.item_id, i.title, round(CAST(r.score AS NUMERIC), 3) AS score, r.reason
FROM recsys.latest_recommendations AS r
JOIN items AS i ON i.item_id = r.item_id
WHERE r.user_id IN (SELECT DISTINCT user_id FROM recsys.latest_recommendations ORDER BY user_id LIMIT 3)
  AND r.rank <= 5
ORDER BY r.user_id, r.rank;
