-- Read-only access for the services and analysts that read our outputs: role {{role}} may SELECT
-- every table and view in the output schema {{schema}} (today's and, through default privileges,
-- tables created later), and nothing on the warehouse's behaviour and catalogue tables.
-- Inputs: identifiers {{role}} (config publish.reader_role), {{schema}} (warehouse.output_schema),
-- {{events}}, {{items}} (the source tables, schema-qualified when configured).
-- Output: the role (NOLOGIN: grant it to login roles, e.g. GRANT recsys_reader TO reporting_app) and
-- its privileges. Idempotent: the role is created only when missing (a concurrent creator is
-- tolerated), GRANT/REVOKE of a privilege already held/absent is a no-op.
-- Default privileges cover tables created later by the role that runs this script: run it as the
-- role that creates the output tables (the owner role of docs/operations.md, 'Database roles and
-- privileges'; the pipeline's own role where one role does both). A PUBLIC grant on the source tables is not revoked here (it is not
-- ours to change): check with \dp <events table>.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE '"' || rolname || '"' = '{{role}}') THEN  -- {{role}} arrives quoted
        BEGIN
            CREATE ROLE {{role}} NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- created concurrently by another session
        END;
    END IF;
END
$$;
GRANT USAGE ON SCHEMA {{schema}} TO {{role}};
GRANT SELECT ON ALL TABLES IN SCHEMA {{schema}} TO {{role}};
ALTER DEFAULT PRIVILEGES IN SCHEMA {{schema}} GRANT SELECT ON TABLES TO {{role}};
REVOKE ALL ON {{events}} FROM {{role}};
REVOKE ALL ON {{items}} FROM {{role}};
