-- "Customers who liked this also liked": the 10 items most similar to one item in the newest set of
-- similar items, with titles (served by the primary key (as_of, item_id, rank)).
-- Runs as-is on PostgreSQL and on the embedded SQLite warehouse (output schema "recsys").
SELECT s.rank, s.similar_item_id, i.title, round(CAST(s.score AS NUMERIC), 3) AS cosine
FROM recsys.latest_similar_items AS s
JOIN items AS i ON i.item_id = s.similar_item_id
WHERE s.item_id = 'i00007' AND s.rank <= 10
ORDER BY s.rank;
