"""The output schema is migrated once per revision: tasks never take DDL locks readers queue behind."""

from __future__ import annotations

import time

import sqlalchemy as sa

from recsys_tasks.data.migrations import head_revision
from recsys_tasks.data.warehouse import create_engine, ensure_output_schema


def test_migrations_run_once_per_revision_then_never_wait_on_readers(pg_database_url: str, pg_schema: str) -> None:
    engine = create_engine(pg_database_url, output_schema=pg_schema, statement_timeout_s=3)
    reader = sa.create_engine(pg_database_url)
    try:
        assert ensure_output_schema(engine, pg_schema) is True
        assert ensure_output_schema(engine, pg_schema) is False
        with engine.connect() as conn:
            stored = conn.execute(sa.text(f'SELECT version_num FROM "{pg_schema}".alembic_version')).scalar()
        assert stored == head_revision()

        # An analyst's long query holds ACCESS SHARE on the view; CREATE OR REPLACE VIEW would queue
        # behind it (and every later reader behind that). A current schema needs no DDL at all.
        with reader.connect() as conn:
            conn.exec_driver_sql(f'SELECT * FROM "{pg_schema}".latest_recommendations')  # open transaction
            started = time.monotonic()
            assert ensure_output_schema(engine, pg_schema) is False
            assert time.monotonic() - started < 1.0
            conn.rollback()

        # An older revision is upgraded, and recorded.
        with engine.begin() as conn:
            conn.execute(sa.text(f'UPDATE "{pg_schema}".alembic_version SET version_num = \'0001\''))
        assert ensure_output_schema(engine, pg_schema) is True
        assert ensure_output_schema(engine, pg_schema) is False
    finally:
        engine.dispose()
        reader.dispose()


def test_sqlite_schema_is_versioned_too(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url, output_schema="recsys")
    try:
        assert ensure_output_schema(engine, "recsys") is True
        assert ensure_output_schema(engine, "recsys") is False
    finally:
        engine.dispose()
