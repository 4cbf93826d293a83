"""Alembic's environment for the output schema: run on the connection and schema that
``recsys_tasks.data.migrations.upgrade_output_schema`` puts in the Config's attributes.

There is no offline (``--sql``) mode and no ``alembic.ini``: the revisions run their DDL from
``sql/schema/``, against a live connection, in the caller's transaction.
"""

from __future__ import annotations

from alembic import context

from recsys_tasks.data.migrations import VERSION_TABLE

connection = context.config.attributes.get("connection")
schema = context.config.attributes.get("schema")
if connection is None or schema is None:
    raise RuntimeError(
        "the output schema's migrations run through recsys_tasks (python -m recsys_tasks.cli migrate), "
        "which passes the connection and the schema; the alembic command line cannot run them"
    )
context.configure(connection=connection, version_table=VERSION_TABLE, version_table_schema=schema)
with context.begin_transaction():  # the caller's transaction: alembic neither begins nor commits it
    context.run_migrations(schema=schema)
