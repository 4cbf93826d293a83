"""A 3-day backfill created through Airflow's REST API (the call the UI's backfill dialog makes).

A real Airflow 3 runs as subprocesses (api-server, scheduler with LocalExecutor, dag-processor)
on a PostgreSQL metadata database created for the test, SimpleAuthManager in all-admins mode (a
JWT from ``GET /auth/token``). The warehouse is a PostgreSQL schema with a small synthetic shop.
The backfill runs newest date first, so the two older runs must keep the newest champion and
publish their own dates point in time: each with the champion of its date (registry.champion_at),
never with the newer model. Every process is stopped in ``finally``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
import yaml

from recsys_tasks.config import WarehouseConfig
from recsys_tasks.data import sources, synth
from recsys_tasks.data.warehouse import create_engine

REPO = Path(__file__).resolve().parents[2]
AIRFLOW = str(Path(sys.executable).parent / "airflow")
TOP_K = 5
# Logical dates 2026-01-30 .. 2026-02-01: data intervals ending (as-of dates) 01-31, 02-01, 02-02.
FROM_DATE, TO_DATE = "2026-01-30T00:00:00Z", "2026-02-01T00:00:00Z"
AS_OF_DATES = ["2026-01-31", "2026-02-01", "2026-02-02"]
DEADLINE_S = 330


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(name: str, args: list[str], env: dict[str, str], logs: Path) -> subprocess.Popen:
    out = (logs / f"{name}.log").open("w")
    # A session of its own, so stopping it stops its children (executor workers, uvicorn) too.
    return subprocess.Popen([AIRFLOW, *args], env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _tails(logs: Path) -> str:
    return "\n".join(f"--- {f.name} ---\n{f.read_text(errors='replace')[-2500:]}" for f in sorted(logs.glob("*.log")))


def _wait(what: str, check, timeout: float, logs: Path, every: float = 1.0):
    stop = time.monotonic() + timeout
    while time.monotonic() < stop:
        try:
            result = check()
        except httpx.HTTPError:
            result = None
        if result:
            return result
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{_tails(logs)}")


@pytest.fixture
def metadata_db(pg_database_url):
    name = "recsys_airflow_test_" + uuid.uuid4().hex[:8]
    admin = sa.create_engine(sa.engine.make_url(pg_database_url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.engine.make_url(pg_database_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def shop(pg_database_url):
    source = "bf_" + uuid.uuid4().hex[:8]
    output = source + "_recsys"
    engine = create_engine(pg_database_url, output_schema=output)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{source}"'))
    events, items = synth.generate(
        n_users=250, n_items=100, start=datetime(2026, 1, 2, tzinfo=timezone.utc), end=datetime(2026, 2, 2, tzinfo=timezone.utc),
        events_per_user_per_day=2.0, seed=11,
    )
    sources.load(engine, events, items, warehouse=WarehouseConfig(source_schema=source), replace=True)
    try:
        yield engine, source, output
    finally:
        engine.dispose()
        with sa.create_engine(pg_database_url).begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{source}" CASCADE'))
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{output}" CASCADE'))


def test_three_day_backfill_through_the_rest_api(tmp_path, metadata_db, shop, pg_database_url):
    engine, source, output = shop
    home, logs = tmp_path / "airflow", tmp_path / "logs"
    home.mkdir()
    logs.mkdir()
    config = tmp_path / "recsys.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "artifact_root": str(tmp_path / "artifacts"),
                "warehouse": {"source_schema": source, "output_schema": output},
                "window": {"history_days": 21},
                "model": {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "max_len": 20},
                "train": {"epochs": 2, "fine_tune_epochs": 1, "batch_size": 64},
                "publish": {"top_k": TOP_K},
            }
        ),
        encoding="utf-8",
    )
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "RECSYS_"))}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__EXECUTOR="LocalExecutor",
        AIRFLOW__CORE__PARALLELISM="4",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=metadata_db,
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC=metadata_db,  # psycopg 3 is async-capable; no asyncpg needed
        AIRFLOW__CORE__AUTH_MANAGER="airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{base}/execution/",
        AIRFLOW__API__BASE_URL=base,
        AIRFLOW__API_AUTH__JWT_SECRET=uuid.uuid4().hex,
        AIRFLOW__API__SECRET_KEY=uuid.uuid4().hex,
        AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="5",
        AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC="1",
        AIRFLOW_CONN_RECSYS_WAREHOUSE=json.dumps({"conn_type": "generic", "extra": {"sqlalchemy_url": pg_database_url}}),
        RECSYS_CONFIG=str(config),
        HF_HUB_OFFLINE="1",
    )
    migrate = subprocess.run([AIRFLOW, "db", "migrate"], env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert migrate.returncode == 0, migrate.stdout[-2000:] + migrate.stderr[-3000:]

    procs: list[subprocess.Popen] = []
    try:
        procs.append(_start("api-server", ["api-server", "--host", "127.0.0.1", "--port", str(port)], env, logs))
        procs.append(_start("dag-processor", ["dag-processor"], env, logs))
        procs.append(_start("scheduler", ["scheduler"], env, logs))
        started = time.monotonic()
        client = httpx.Client(base_url=base, timeout=30)
        token = _wait("the API server", lambda: client.get("/auth/token").json().get("access_token"), 120, logs)
        client.headers["Authorization"] = f"Bearer {token}"
        _wait("recsys_retrain to be parsed", lambda: client.get("/api/v2/dags/recsys_retrain").status_code == 200, 120, logs)

        assert client.patch("/api/v2/dags/recsys_retrain", json={"is_paused": False}).status_code == 200
        created = client.post(
            "/api/v2/backfills",
            json={
                "dag_id": "recsys_retrain",
                "from_date": FROM_DATE,
                "to_date": TO_DATE,
                "run_backwards": True,  # newest first: the older runs meet a champion trained on newer data
                "max_active_runs": 1,
                "reprocess_behavior": "none",
                "dag_run_conf": {"top_k": TOP_K},
            },
        )
        assert created.status_code in (200, 201), created.text
        backfill_id = created.json()["id"]

        def finished():
            runs = client.get("/api/v2/dags/recsys_retrain/dagRuns", params={"limit": 50}).json()["dag_runs"]
            runs = [r for r in runs if r.get("run_type") == "backfill"]
            if len(runs) == 3 and all(r["state"] in ("success", "failed") for r in runs):
                return runs
            return None

        remaining = DEADLINE_S - (time.monotonic() - started)
        runs = _wait("the 3 backfill runs to finish", finished, remaining, logs, every=3)
        assert all(r["state"] == "success" for r in runs), (runs, _tails(logs))
        backfill = client.get(f"/api/v2/backfills/{backfill_id}").json()
        assert backfill["dag_id"] == "recsys_retrain" and backfill["is_paused"] is False
    finally:
        _stop(procs)

    with engine.connect() as conn:
        pubs = conn.execute(sa.text(f'SELECT as_of, model_version, users, "rows" FROM "{output}".publications ORDER BY as_of')).all()
        models = conn.execute(
            sa.text(f'SELECT model_version, status, as_of, data_end, decision FROM "{output}".model_registry ORDER BY as_of')
        ).all()
        counts = conn.execute(sa.text(f'SELECT as_of, count(*) AS n FROM "{output}".recommendations GROUP BY as_of ORDER BY as_of')).all()
    assert [str(p.as_of)[:10] for p in pubs] == AS_OF_DATES
    assert [(str(c.as_of)[:10], c.n) for c in counts] == [(str(p.as_of)[:10], p.rows) for p in pubs]
    champions = [m for m in models if m.status == "champion"]
    assert len(champions) == 1
    # The champion is the model trained on the newest data; older-dated runs did not replace it.
    assert str(champions[0].as_of)[:10] == AS_OF_DATES[-1]
    # Point in time: every date is published by a model trained for that date or earlier, on data
    # from before the date began (so never by the newer champion for the older dates).
    by_version = {m.model_version: m for m in models}
    for p in pubs:
        model = by_version[p.model_version]
        assert str(model.as_of)[:10] <= str(p.as_of)[:10], (p, model)
        assert model.data_end < datetime.fromisoformat(str(p.as_of)[:10]).replace(tzinfo=timezone.utc), (p, model)
    assert pubs[-1].model_version == champions[0].model_version
    older = [m for m in models if m.status != "champion"]
    assert len(older) == 2 and all(m.status in ("retired", "rejected") for m in older), older
