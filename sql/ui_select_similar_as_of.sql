-- The newest as-of date of the similar_items table. Read-only.
SELECT max(as_of) AS as_of FROM {{schema}}.similar_items
