-- Drop the refresh's session-private staging table once the replace committed or gave up. No inputs. Idempotent.
DROP TABLE IF EXISTS pg_temp.recsys_refresh_stage
