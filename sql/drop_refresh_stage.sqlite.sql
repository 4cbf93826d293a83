-- Drop the refresh's staging table before commit (PostgreSQL drops it ON COMMIT). No inputs. Idempotent.
DROP TABLE IF EXISTS temp.recsys_refresh_stage
