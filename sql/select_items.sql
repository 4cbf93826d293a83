-- The item catalogue as known at the end of the run's interval (items created before <end>, or undated).
-- Inputs: <end> (bound timestamp); identifiers {{items}} and the mapped column names from config.
-- Output: canonical item columns, one row per catalogue row. Read-only; idempotent.
SELECT
    {{item_id}}    AS item_id,
    {{title}}      AS title,
    {{category}}   AS category,
    {{created_at}} AS created_at
FROM {{items}}
WHERE {{created_at}} < :end OR {{created_at}} IS NULL
