-- Today's recommendations for one user (served by the primary key index).
SELECT rank, item_id, score, reason
FROM recsys.latest_recommendations
WHERE user_id = 'u000042'
ORDER BY rank;
