-- Drop the refresh's connection-private staging table once the replace committed or gave up. No inputs. Idempotent.
DROP TABLE IF EXISTS temp.recsys_refresh_stage
