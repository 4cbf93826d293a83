-- A "because you viewed" shelf for one user: neighbours of the items they viewed most recently,
-- best cosine first, without the items they already viewed or bought. Reads the behaviour table,
-- so it runs as the pipeline's role, not as recsys_reader.
WITH recent AS (
    SELECT item_id, max(event_ts) AS last_seen
    FROM events
    WHERE user_id = 'u000042' AND item_id IS NOT NULL AND event_type IN ('view', 'click')
    GROUP BY item_id
    ORDER BY last_seen DESC
    LIMIT 5
)
SELECT s.similar_item_id, max(s.score) AS best_cosine, min(s.item_id) AS because_of
FROM recsys.latest_similar_items AS s
JOIN recent AS r ON r.item_id = s.item_id
WHERE s.similar_item_id NOT IN (SELECT item_id FROM events WHERE user_id = 'u000042' AND item_id IS NOT NULL)
GROUP BY s.similar_item_id
ORDER BY best_cosine DESC
LIMIT 10;
