-- The current champion, and the primary metric of every model evaluated in the last 30 runs.
SELECT model_version, parent_version, as_of, decision FROM recsys.champion;

SELECT e.as_of, e.role, e.model_version, e.value AS ndcg_at_10, e.users
FROM recsys.evaluations AS e
WHERE e.segment = 'all' AND e.metric = 'ndcg@10'
ORDER BY e.as_of DESC, e.role
LIMIT 90;
