"""Comments: describe every table, view and column of the output schema on PostgreSQL.

Revision 0002 runs ``sql/schema/comment_output_tables.postgresql.sql`` (``COMMENT ON``), so ``\\d+``,
BI tools and catalogues show what each table, view and column means; ``docs/dbt/sources.yml`` repeats
the texts for dbt users. SQLite has no comments: there this revision only moves the version.
"""

from __future__ import annotations

from alembic import op

from recsys_tasks.data.migrations import run_script
from recsys_tasks.sqlfiles import load_sql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade(*, schema: str) -> None:
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        return
    run_script(conn, load_sql("schema/comment_output_tables", dialect="postgresql", schema=schema))


def downgrade(*, schema: str) -> None:
    """Leaves the comments: they change nothing a query reads or writes, and 0001's code runs with them."""
