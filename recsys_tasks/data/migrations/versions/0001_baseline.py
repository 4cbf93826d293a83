"""Baseline: the output schema as sql/schema/create_output_tables.<dialect>.sql creates it.

Revision 0001 runs that file (tables, partitioned tables, views, indexes) and writes its
``schema_version`` row. The file *is* this revision, so it never changes again
(tests/recsys_tasks/data/test_migrations.py pins its digest): change the schema with a new revision. A
schema the file created before migrations existed is stamped with this revision rather than running it
again (``recsys_tasks.data.migrations.upgrade_output_schema``).
"""

from __future__ import annotations

from alembic import op

from recsys_tasks.data.migrations import baseline_digest, run_script
from recsys_tasks.sqlfiles import load_sql, statement
from recsys_tasks.timeutil import now_iso

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade(*, schema: str) -> None:
    conn = op.get_bind()
    dialect = conn.dialect.name
    run_script(conn, load_sql("schema/create_output_tables", dialect=dialect, schema=schema))
    # Workers still on the code before migrations compare this row with the file they ship: equal, they
    # run no DDL, so a rolling deploy does not make them fight over locks.
    row = {"version": baseline_digest(dialect), "applied_at": now_iso()}
    conn.execute(statement("upsert_schema_version", schema=schema), row)


def downgrade(*, schema: str) -> None:
    raise NotImplementedError(
        f"revision 0001 is the whole output schema {schema}: there is nothing below it to go back to. "
        "Drop the schema by hand if you mean to lose every table in it."
    )
