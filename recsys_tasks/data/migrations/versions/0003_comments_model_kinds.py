"""Comments again: ``model_registry.kind`` gains ``pretrained`` (a checkpoint fine-tuned with LoRA).

Re-runs ``sql/schema/comment_output_tables.postgresql.sql``, which is idempotent (``COMMENT ON``
replaces), so a schema that reached 0002 with the older texts gets today's. SQLite has no comments.
"""

from __future__ import annotations

from alembic import op

from recsys_tasks.data.migrations import run_script
from recsys_tasks.sqlfiles import load_sql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade(*, schema: str) -> None:
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        return
    run_script(conn, load_sql("schema/comment_output_tables", dialect="postgresql", schema=schema))


def downgrade(*, schema: str) -> None:
    """Leaves the comments: they change nothing a query reads or writes."""
