"""Warehouse connections resolve through Airflow's provider hooks: TLS/IAM-style extras survive.

Real Airflow Connection objects built in memory (the task SDK's, which tasks get, and the models',
which the UI plugin gets), resolved by ``dags/recsys_context.connection_url``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

DAGS = Path(__file__).resolve().parents[2] / "dags"
if str(DAGS) not in sys.path:
    sys.path.append(str(DAGS))  # as Airflow does for its DAG folder

from airflow.models import Connection as ModelsConnection  # noqa: E402
from airflow.sdk import Connection  # noqa: E402
from recsys_context import connection_url  # noqa: E402

from recsys_tasks.data.warehouse import create_engine  # noqa: E402

EXTRA = {
    "sslmode": "disable",
    "application_name": "recsys",
    "sqlalchemy_query": {"connect_timeout": "7", "sslmode": "require"},
    "keepalives": True,
    "cursor": "dictcursor",  # the hook's own option, not libpq's: must not reach the URL
}


@pytest.mark.parametrize("connection_class", [Connection, ModelsConnection], ids=["task-sdk", "models"])
def test_a_postgres_connection_keeps_its_libpq_extras(connection_class) -> None:
    conn = connection_class(
        conn_id="recsys_source", conn_type="postgres", host="db.example", port=6543, login="reader",
        password="p@ss/word", schema="shop", extra=json.dumps(EXTRA),
    )
    url = sa.engine.make_url(connection_url(conn))
    # No IAM: the hook's default scheme is psycopg 3 (SQLAlchemy 2).
    assert url.drivername == "postgresql+psycopg"
    assert (url.host, url.port, url.username, url.password, url.database) == ("db.example", 6543, "reader", "p@ss/word", "shop")
    # sqlalchemy_query wins over the plain extra of the same name; the other libpq extras are added.
    assert dict(url.query) == {"application_name": "recsys", "connect_timeout": "7", "keepalives": "1", "sslmode": "require"}


def test_the_hook_decides_the_driver_and_the_fields_decide_without_a_hook(tmp_path: Path) -> None:
    pg2 = Connection(conn_id="c", conn_type="postgres", host="h", extra=json.dumps({"sqlalchemy_scheme": "postgresql+psycopg2"}))
    assert connection_url(pg2) == "postgresql+psycopg2://h"
    generic = Connection(conn_id="c", conn_type="generic", extra=json.dumps({"sqlalchemy_url": "mysql+pymysql://u:p@h/db"}))
    assert connection_url(generic) == "mysql+pymysql://u:p@h/db"
    # No sqlite provider is installed: the connection's fields make the URL.
    assert connection_url(Connection(conn_id="c", conn_type="sqlite", host=str(tmp_path / "shop.db"))) == f"sqlite:///{tmp_path}/shop.db"


def test_the_extras_reach_the_server(pg_database_url: str) -> None:
    """A session opened on the resolved URL runs with the connection's libpq extras."""
    server = sa.engine.make_url(pg_database_url)
    conn = Connection(
        conn_id="recsys_output", conn_type="postgres", host=server.host, port=server.port, login=server.username,
        password=server.password, schema=server.database,
        extra=json.dumps({"sslmode": "disable", "application_name": "recsys_conn_test", "options": "-c search_path=pg_catalog"}),
    )
    engine = create_engine(connection_url(conn), statement_timeout_s=5)
    try:
        with engine.connect() as db:
            shown = {name: db.exec_driver_sql(f"SHOW {name}").scalar() for name in ("application_name", "search_path", "statement_timeout")}
            ssl = db.exec_driver_sql("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").scalar()
    finally:
        engine.dispose()
    # The connection's options and our statement timeout both apply.
    assert shown == {"application_name": "recsys_conn_test", "search_path": "pg_catalog", "statement_timeout": "5s"}
    assert ssl is False
