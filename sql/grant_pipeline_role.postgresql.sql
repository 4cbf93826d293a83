-- Least privilege for the role the DAGs connect as (docs/operations.md, "Database roles and privileges").
-- The output schema {{schema}} belongs to {{owner_role}}, which created it (`cli migrate`). The pipeline
-- role {{pipeline_role}} gets: USAGE + CREATE on the schema (its staging tables), SELECT/INSERT/UPDATE/
-- DELETE on the schema's tables (today's and, by default privileges, those {{owner_role}} creates later),
-- USAGE on {{source_schema}} and SELECT on the two source tables {{events}}, {{items}} only, and
-- membership in {{publisher_role}}, a NOLOGIN group that owns just the two partitioned tables
-- (recommendations, similar_items) and their partitions: PostgreSQL lets only an owner ATTACH/DETACH a
-- partition, so the publish swap needs ownership of those two tables and of nothing else. It cannot
-- drop or alter the registry, evaluations or validation history, nor run the schema's DDL.
-- Inputs: identifiers {{schema}}, {{owner_role}}, {{pipeline_role}}, {{publisher_role}}, {{source_schema}},
-- {{events}}, {{items}} (schema-qualified). Run by a superuser (or a CREATEROLE role that is a member of
-- {{owner_role}}) after the schema exists.
-- Idempotent: roles are created only when missing (NOLOGIN; give the pipeline role LOGIN and a password
-- yourself), a GRANT already held and an ownership already given are no-ops.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE '"' || rolname || '"' = '{{publisher_role}}') THEN  -- arrives quoted
        BEGIN
            CREATE ROLE {{publisher_role}} NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- created concurrently by another session
        END;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE '"' || rolname || '"' = '{{pipeline_role}}') THEN
        BEGIN
            CREATE ROLE {{pipeline_role}} NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
END
$$;
-- The owner stays able to migrate the two tables (CREATE INDEX IF NOT EXISTS needs ownership).
GRANT {{publisher_role}} TO {{owner_role}};
GRANT {{publisher_role}} TO {{pipeline_role}};
-- A new owner needs CREATE on the table's schema (ALTER ... OWNER TO checks it for non-superusers).
GRANT USAGE, CREATE ON SCHEMA {{schema}} TO {{publisher_role}};
ALTER TABLE {{schema}}.recommendations OWNER TO {{publisher_role}};
ALTER TABLE {{schema}}.similar_items OWNER TO {{publisher_role}};
-- Partitions made before this grant (e.g. by the owner running the pipeline itself) must be droppable
-- by the swap and by retention; the pipeline's own later partitions it owns already.
DO $$
DECLARE
    part regclass;
BEGIN
    FOR part IN
        SELECT i.inhrelid::regclass
        FROM pg_catalog.pg_inherits AS i
        WHERE i.inhparent IN ('{{schema}}.recommendations'::regclass, '{{schema}}.similar_items'::regclass)
    LOOP
        EXECUTE format('ALTER TABLE %s OWNER TO %s', part, '{{publisher_role}}');
    END LOOP;
END
$$;
GRANT USAGE, CREATE ON SCHEMA {{schema}} TO {{pipeline_role}};
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {{schema}} TO {{pipeline_role}};
ALTER DEFAULT PRIVILEGES FOR ROLE {{owner_role}} IN SCHEMA {{schema}}
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {{pipeline_role}};
GRANT USAGE ON SCHEMA {{source_schema}} TO {{pipeline_role}};
GRANT SELECT ON {{events}}, {{items}} TO {{pipeline_role}};
