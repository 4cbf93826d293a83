"""Connections fail fast and say what is wrong: host, database and role, never the password."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from recsys_tasks.data.warehouse import WarehouseError, create_engine


def _fails(url: str, sql: str = "SELECT 1", **kwargs) -> tuple[WarehouseError, float]:
    engine = create_engine(url, **kwargs)
    started = time.monotonic()
    try:
        with pytest.raises(WarehouseError) as info, engine.connect() as conn:
            conn.exec_driver_sql(sql)
    finally:
        engine.dispose()
    return info.value, time.monotonic() - started


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts TCP connections and never answers (a hung server or a black-holing proxy)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    yield server.getsockname()[1]
    server.close()


def test_a_silent_server_fails_within_the_connect_timeout(silent_server: int) -> None:
    error, seconds = _fails(f"postgresql+psycopg://pipeline:hunter2@127.0.0.1:{silent_server}/shop", connect_timeout_s=2)
    assert seconds < 10
    message = str(error)
    assert f"127.0.0.1:{silent_server}/shop (role pipeline)" in message and "could not be reached" in message
    assert "hunter2" not in message


def test_a_refused_connection_and_a_missing_database_are_named() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    error, _ = _fails(f"postgresql+psycopg://postgres:pw@127.0.0.1:{port}/shop")
    assert "refused" in str(error).lower() and "pw@" not in str(error)
    error, _ = _fails("postgresql+psycopg://postgres@127.0.0.1:5432/no_such_database_here")
    assert 'database "no_such_database_here" does not exist' in str(error)


def test_a_statement_past_its_timeout_is_cancelled(pg_database_url: str) -> None:
    error, seconds = _fails(pg_database_url, "SELECT pg_sleep(5)", statement_timeout_s=0.3)
    assert seconds < 4 and "gave up waiting" in str(error) and "statement timeout" in str(error)


def test_a_missing_privilege_is_named(pg_engine: sa.Engine, pg_schema: str, pg_database_url: str) -> None:
    role = "r_" + uuid.uuid4().hex[:8]
    with pg_engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE ROLE "{role}" LOGIN')
        conn.exec_driver_sql(f'CREATE TABLE "{pg_schema}".events (event_id text)')
        conn.exec_driver_sql(f'GRANT USAGE ON SCHEMA "{pg_schema}" TO "{role}"')
    try:
        url = sa.engine.make_url(pg_database_url).set(username=role, password=None)
        error, _ = _fails(url.render_as_string(hide_password=False), f'SELECT * FROM "{pg_schema}".events')
        assert "permission denied for table events" in str(error)
        assert f"(role {role})" in str(error) and "Grant the missing privilege" in str(error)
    finally:
        with pg_engine.begin() as conn:
            conn.exec_driver_sql(f'DROP OWNED BY "{role}"')
            conn.exec_driver_sql(f'DROP ROLE "{role}"')
