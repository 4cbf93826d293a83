"""Alembic migrations of our output schema, run through the programmatic API with our own connection.

The revisions live in ``versions/`` (shipped in the wheel) and the version table is
``<schema>.alembic_version``, inside the output schema itself (on SQLite: inside its attached file).
Revision ``0001`` is the schema ``sql/schema/create_output_tables.<dialect>.sql`` creates; a schema that
file created before migrations existed (its ``schema_version`` row holds the file's digest) is stamped
``0001`` instead of running the DDL again, and later revisions apply on top. No ``alembic.ini`` is
needed: :func:`upgrade_output_schema` builds the Config, and ``env.py`` takes the connection and the
schema from its attributes.
"""

from __future__ import annotations

import hashlib
import logging
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from recsys_tasks.sqlfiles import split_statements, sql_path, statement

if TYPE_CHECKING:  # alembic is imported where it runs: DAG files that import the library parse fast
    from alembic.config import Config

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent
VERSION_TABLE = "alembic_version"
#: The revision that is ``sql/schema/create_output_tables.<dialect>.sql``.
BASELINE = "0001"


def _config(conn: sa.Connection, schema: str) -> Config:
    from alembic import config

    cfg = config.Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes.update(connection=conn, schema=schema)
    return cfg


@lru_cache(maxsize=1)
def head_revision() -> str:
    """The newest revision this code ships."""
    from alembic.script import ScriptDirectory

    (head,) = ScriptDirectory(str(MIGRATIONS_DIR)).get_heads()  # one line of history, never branches
    return head


def current_revision(bind: sa.Engine | sa.Connection, schema: str) -> str | None:
    """The revision ``schema`` is at (None: never migrated): a catalog lookup and one SELECT, no lock."""
    if isinstance(bind, sa.Engine):
        with bind.connect() as conn:
            return current_revision(conn, schema)
    if not sa.inspect(bind).has_table(VERSION_TABLE, schema=schema):
        return None
    return bind.execute(statement("select_schema_revision", schema=schema)).scalar()


def baseline_digest(dialect: str) -> str:
    """Digest of the baseline DDL file, as the code before migrations recorded it in ``schema_version``."""
    text = sql_path("schema/create_output_tables", dialect=dialect).read_text(encoding="utf-8")
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def run_script(conn: sa.Connection, script: str) -> None:
    """Run each statement of ``script`` as written (a ``%`` is text, not a driver placeholder)."""
    escape = conn.dialect.paramstyle in ("format", "pyformat")  # psycopg reads %s, %L as placeholders
    for sql in split_statements(script):
        conn.exec_driver_sql(sql.replace("%", "%%") if escape else sql)


def upgrade_output_schema(conn: sa.Connection, schema: str) -> bool:
    """Bring ``schema`` to the head revision on ``conn``, in its transaction; return whether anything ran.

    The caller holds whatever serialises concurrent upgrades (``warehouse.ensure_output_schema``
    takes an advisory lock on PostgreSQL) and commits.
    """
    from alembic import command

    current, head = current_revision(conn, schema), head_revision()
    if current == head:
        return False
    cfg = _config(conn, schema)
    if current is None and _legacy_version(conn, schema) == baseline_digest(conn.dialect.name):
        log.info("schema %s was made by the baseline DDL: stamping it as revision %s", schema, BASELINE)
        command.stamp(cfg, BASELINE)
        current = BASELINE
    log.info("upgrading the output schema %s from revision %s to %s", schema, current or "<none>", head)
    command.upgrade(cfg, "head")
    return True


def _legacy_version(conn: sa.Connection, schema: str) -> str | None:
    """The DDL digest in ``schema_version``, the version row of the code before migrations (None: none)."""
    if not sa.inspect(conn).has_table("schema_version", schema=schema):
        return None
    return conn.execute(statement("select_schema_version", schema=schema)).scalar()
