-- Which users get one item in today's publication (served by the (as_of, item_id) index).
SELECT user_id, rank, score
FROM recsys.latest_recommendations
WHERE item_id = 'i00007'
ORDER BY rank, user_id;
