-- Bulk load of the item catalogue into the warehouse items table (sources.load).
-- Inputs: {{items}} and the mapped column names from config; rows in COPY binary format on STDIN
-- (data.writer), so the columns must have the contract's types.
-- Output: the rows appended. Not idempotent (item_id is the primary key: a second load of the
-- same items fails); sources.load(replace=True) empties first.
COPY {{items}} ({{item_id}}, {{title}}, {{category}}, {{created_at}}) FROM STDIN (FORMAT BINARY)
