"""Who may do what on PostgreSQL: the read-only role of our outputs, and the least-privileged pipeline role.

Three roles (docs/operations.md, "Database roles and privileges"):

- the **owner** creates and migrates the output schema (``python -m recsys_tasks.cli migrate``);
- the **pipeline** role, which the DAGs connect as, reads the source tables and writes the output
  tables' rows, and swaps partitions as a member of the **publisher** group that owns only the two
  partitioned tables (``sql/grant_pipeline_role.postgresql.sql``);
- the **reader** role (``publish.reader_role``, ``recsys_reader``) used by services and analysts, which
  can read every table and view of the output schema and nothing of the warehouse's behaviour tables
  (``sql/grant_reader_role.postgresql.sql``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import sqlalchemy as sa

from recsys_tasks.config import RecsysConfig, check_identifier
from recsys_tasks.data.warehouse import ensure_output_schema, table_ref
from recsys_tasks.sqlfiles import load_sql, run_script

log = logging.getLogger(__name__)


class AccessError(RuntimeError):
    """A role cannot be set up on this database; the message says why and what to do."""


@dataclass(frozen=True)
class PipelineGrant:
    """The roles :func:`grant_pipeline_role` set up."""

    role: str
    owner: str
    publisher: str
    can_login: bool


def grant_reader_role(engine: sa.Engine, cfg: RecsysConfig, *, role: str | None = None) -> str:
    """Create (if missing) the read-only role and grant it the output schema; return the role name."""
    _require_postgresql(engine)
    name = role or cfg.publish.reader_role
    wh = cfg.warehouse
    script = load_sql(
        "grant_reader_role",
        dialect="postgresql",
        role=name,
        schema=wh.output_schema,
        events=table_ref(wh.source_schema, wh.events_table),
        items=table_ref(wh.source_schema, wh.items_table),
    )
    ensure_output_schema(engine, wh.output_schema)  # grants cover every output table from the start
    _run_script(engine, script)
    log.info("role %s may now read schema %s (and not %s, %s)", name, wh.output_schema, wh.events_table, wh.items_table)
    return name


def grant_pipeline_role(
    engine: sa.Engine,
    cfg: RecsysConfig,
    *,
    role: str,
    owner: str | None = None,
    publisher: str | None = None,
) -> PipelineGrant:
    """Give ``role`` exactly what a pipeline run needs on the migrated output schema and the source tables.

    ``owner`` defaults to the output schema's owner, ``publisher`` (the group owning the two
    partitioned tables) to ``<owner>_publisher``. Run it as a superuser (or a CREATEROLE member of
    the owner) after ``migrate``.
    """
    _require_postgresql(engine)
    wh = cfg.warehouse
    check_identifier(role, key="--role")
    with engine.connect() as conn:
        owner = owner or _schema_owner(conn, wh.output_schema)
        publisher = check_identifier(publisher or f"{owner}_publisher", key="--publisher")
        missing = [t for t in ("recommendations", "similar_items") if not sa.inspect(conn).has_table(t, schema=wh.output_schema)]
        if missing:
            raise AccessError(
                f"schema {wh.output_schema} lacks {', '.join(missing)}: it was not migrated. Run `python -m "
                "recsys_tasks.cli migrate` as the owner role first."
            )
        superuser = conn.execute(sa.text("SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = :r"), {"r": role}).scalar()
        source_schema = wh.source_schema or sa.inspect(conn).default_schema_name
    if superuser:
        raise AccessError(f"role {role} is a superuser, which no privilege restricts; use a non-superuser login role")
    if role in (owner, publisher):
        raise AccessError(f"the pipeline role must differ from the owner ({owner}) and the publisher group ({publisher})")
    script = load_sql(
        "grant_pipeline_role",
        dialect="postgresql",
        schema=wh.output_schema,
        owner_role=owner,
        pipeline_role=role,
        publisher_role=publisher,
        source_schema=source_schema,
        events=table_ref(source_schema, wh.events_table),
        items=table_ref(source_schema, wh.items_table),
    )
    _run_script(engine, script)
    with engine.connect() as conn:
        can_login = bool(conn.execute(sa.text("SELECT rolcanlogin FROM pg_catalog.pg_roles WHERE rolname = :r"), {"r": role}).scalar())
    log.info("role %s may now run the pipeline on schema %s (owner %s, publisher group %s)", role, wh.output_schema, owner, publisher)
    return PipelineGrant(role=role, owner=owner, publisher=publisher, can_login=can_login)


def _schema_owner(conn: sa.Connection, schema: str) -> str:
    owner = conn.execute(
        sa.text("SELECT pg_catalog.pg_get_userbyid(nspowner) FROM pg_catalog.pg_namespace WHERE nspname = :s"), {"s": schema}
    ).scalar()
    if owner is None:
        raise AccessError(
            f"the output schema {schema} does not exist. Create it as the owner role with `python -m recsys_tasks.cli "
            "migrate` (connect as that role), then grant the pipeline role."
        )
    return str(owner)


def _require_postgresql(engine: sa.Engine) -> None:
    if engine.dialect.name != "postgresql":
        raise AccessError(
            f"roles exist on PostgreSQL only; {engine.dialect.name} has no per-role privileges (protect the "
            "SQLite files with file permissions instead)"
        )


def _run_script(engine: sa.Engine, script: str) -> None:
    with engine.begin() as conn:
        run_script(conn, script)
