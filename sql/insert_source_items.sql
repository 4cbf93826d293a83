-- Append items to the warehouse item catalogue (executemany; dialects without COPY).
-- Inputs: {{items}} and the mapped column names from config; bound values named by canonical field.
-- Output: the rows appended. Not idempotent (item_id is the primary key); replace=True empties first.
INSERT INTO {{items}} ({{item_id}}, {{title}}, {{category}}, {{created_at}})
VALUES (:item_id, :title, :category, :created_at)
