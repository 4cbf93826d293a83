-- Bulk load of the item catalogue into the warehouse items table (synth.load).
-- Inputs: {{items}} and the mapped column names from config; rows in COPY text format on STDIN.
-- Output: the rows appended. Not idempotent (item_id is the primary key: a second load of the
-- same items fails); synth.load(replace=True) empties first.
COPY {{items}} ({{item_id}}, {{title}}, {{category}}, {{created_at}}) FROM STDIN
