"""Shared fixtures: a real PostgreSQL test database and an embedded SQLite warehouse.

PostgreSQL is the one on 127.0.0.1:5432 (trust auth on dev and CI machines). Each test session
uses database ``$RECSYS_TEST_PG_DB`` (default ``recsys_test``), created if missing; tests that need
isolation create their own schema inside it.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[1]

# Airflow reads its configuration at import: point it at a throwaway home before any test imports it.
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="recsys-test-airflow-")
os.environ.setdefault("AIRFLOW_HOME", _AIRFLOW_HOME)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO / "dags"))
os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{_AIRFLOW_HOME}/airflow.db")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

PG_ADMIN_URL = os.environ.get("RECSYS_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
PG_DB = os.environ.get("RECSYS_TEST_PG_DB", "recsys_test")


def _pg_url(database: str) -> str:
    return sa.engine.make_url(PG_ADMIN_URL).set(database=database).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_database_url() -> str:
    """URL of the session's PostgreSQL test database (created if it does not exist)."""
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": PG_DB}).scalar()
            if not exists:
                conn.execute(sa.text(f'CREATE DATABASE "{PG_DB}"'))
    except sa.exc.OperationalError as exc:  # pragma: no cover - environment problem, say what to do
        pytest.fail(f"PostgreSQL at {PG_ADMIN_URL} is not reachable ({exc}); start it or set RECSYS_TEST_PG_ADMIN_URL")
    finally:
        admin.dispose()
    return _pg_url(PG_DB)


@pytest.fixture
def pg_engine(pg_database_url: str) -> Iterator[sa.Engine]:
    """An engine on the test database, disposed after the test."""
    engine = sa.create_engine(pg_database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_schema(pg_engine: sa.Engine) -> Iterator[str]:
    """A fresh, uniquely named schema dropped after the test."""
    name = "t_" + uuid.uuid4().hex[:10]
    with pg_engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
    yield name
    with pg_engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{name}" CASCADE'))


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    """URL of a fresh SQLite warehouse file."""
    return f"sqlite:///{tmp_path / 'warehouse.db'}"


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory) -> Iterator[str]:
    """A real S3-compatible server (moto's, from PyPI) on 127.0.0.1, for the object-store tests."""
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"the local S3 server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def s3_root(s3_endpoint, monkeypatch) -> dict:
    """A fresh bucket on the local S3 server: ``{"artifact_root": "s3://<bucket>/artifacts", "artifact_storage_options": ...}``.

    The credentials are moto's dummies, set in the environment the way a worker's would be.
    """
    import s3fs

    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    bucket = "recsys-" + uuid.uuid4().hex[:10]
    s3fs.S3FileSystem(endpoint_url=s3_endpoint, skip_instance_cache=True).mkdir(bucket)
    return {"artifact_root": f"s3://{bucket}/artifacts", "artifact_storage_options": {"endpoint_url": s3_endpoint}}
