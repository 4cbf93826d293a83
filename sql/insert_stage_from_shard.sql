-- Append one shard's staged recommendations to the publication's staging table (a server-side copy).
-- Inputs: identifiers {{schema}}, {{stage}} (the publication's stage), {{shard}} (the shard's stage);
-- both are shaped like the recommendations table. Not idempotent: the caller fills a fresh stage once.
INSERT INTO {{schema}}.{{stage}}
SELECT * FROM {{schema}}.{{shard}}
