"""Who may read what we publish: a read-only PostgreSQL role on the output schema.

Services and analysts read ``latest_recommendations`` and ``latest_similar_items`` through the
``publish.reader_role`` role (``recsys_reader``), which can read every table and view of the output
schema and nothing of the warehouse's behaviour tables (see ``sql/grant_reader_role.postgresql.sql``).
"""

from __future__ import annotations

import logging

import sqlalchemy as sa

from recsys_tasks.config import RecsysConfig
from recsys_tasks.data.warehouse import ensure_output_schema, table_ref
from recsys_tasks.sqlfiles import load_sql, split_statements

log = logging.getLogger(__name__)


class AccessError(RuntimeError):
    """The reader role cannot be set up on this database; the message says why."""


def grant_reader_role(engine: sa.Engine, cfg: RecsysConfig, *, role: str | None = None) -> str:
    """Create (if missing) the read-only role and grant it the output schema; return the role name."""
    if engine.dialect.name != "postgresql":
        raise AccessError(
            f"roles exist on PostgreSQL only; {engine.dialect.name} has no per-role privileges (protect the "
            "SQLite files with file permissions instead)"
        )
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
    with engine.begin() as conn:
        for statement in split_statements(script):
            conn.exec_driver_sql(statement)
    log.info("role %s may now read schema %s (and not %s, %s)", name, wh.output_schema, wh.events_table, wh.items_table)
    return name
