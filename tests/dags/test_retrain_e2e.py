"""The real DAG, run end to end by Airflow (`airflow dags test`) on a synthetic shop.

Against the embedded SQLite default here; against PostgreSQL (the production warehouse) the DAG
runs as a least-privileged pipeline role in test_least_privilege.py, with the same checks, from the
harness below. Each run of the same logical date twice must leave the publication's row counts
unchanged and keep exactly one champion.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from recsys_tasks.config import WarehouseConfig
from recsys_tasks.data import sources, synth
from recsys_tasks.data.warehouse import create_engine

REPO = Path(__file__).resolve().parents[2]
AIRFLOW = str(Path(sys.executable).parent / "airflow")
LOGICAL_DATE = "2026-02-01"
TOP_K = 5


def _airflow_env(home: Path, *, warehouse_url: str, config_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
        AIRFLOW_CONN_RECSYS_WAREHOUSE=json.dumps({"conn_type": "generic", "extra": {"sqlalchemy_url": warehouse_url}}),
        RECSYS_CONFIG=str(config_path),
        HF_HUB_OFFLINE="1",
    )
    return env


def _run(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=900)
    log.write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr, encoding="utf-8")
    return proc


def _shop(engine: sa.Engine, warehouse: WarehouseConfig) -> None:
    events, items = synth.generate(
        n_users=250,
        n_items=100,
        start=datetime(2026, 1, 2, tzinfo=timezone.utc),
        end=datetime(2026, 2, 1, tzinfo=timezone.utc),
        events_per_user_per_day=2.0,
        seed=11,
    )
    sources.load(engine, events, items, warehouse=warehouse, replace=True)


def _config(tmp_path: Path, *, source_schema: str | None, output_schema: str) -> Path:
    cfg = {
        "artifact_root": str(tmp_path / "artifacts"),
        "warehouse": {"source_schema": source_schema, "output_schema": output_schema},
        "window": {"history_days": 21},
        "model": {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "max_len": 20},
        "train": {"epochs": 2, "fine_tune_epochs": 1, "batch_size": 64},
        "publish": {"top_k": TOP_K},
    }
    path = tmp_path / "recsys.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def _dag_test(env: dict[str, str], tmp_path: Path, attempt: int) -> None:
    proc = _run([AIRFLOW, "dags", "test", "recsys_retrain", LOGICAL_DATE], env, tmp_path / f"dags-test-{attempt}.log")
    tail = (proc.stdout + proc.stderr)[-4000:]
    assert proc.returncode == 0, tail
    assert "state=success" in proc.stdout + proc.stderr, tail


def _check_publication(engine: sa.Engine, schema: str) -> dict[str, int]:
    with engine.connect() as conn:
        pubs = conn.execute(sa.text(f'SELECT as_of, users, "rows", model_version FROM "{schema}".publications')).all()
        assert len(pubs) == 1 and str(pubs[0].as_of)[:10] == LOGICAL_DATE
        per_user = conn.execute(
            sa.text(
                f'SELECT user_id, count(*) AS n, count(DISTINCT item_id) AS d FROM "{schema}".latest_recommendations GROUP BY user_id'
            )
        ).all()
        champions = conn.execute(sa.text(f"SELECT model_version FROM \"{schema}\".model_registry WHERE status = 'champion'")).all()
        models = conn.execute(sa.text(f'SELECT count(*) FROM "{schema}".model_registry')).scalar()
        evaluations = conn.execute(sa.text(f'SELECT count(*) FROM "{schema}".evaluations')).scalar()
        total = conn.execute(sa.text(f'SELECT count(*) FROM "{schema}".recommendations')).scalar()
    assert per_user, "no recommendations were published"
    assert all(n == TOP_K and d == TOP_K for _, n, d in per_user), "every user gets exactly K distinct items"
    assert len(champions) == 1
    assert pubs[0].model_version == champions[0].model_version
    assert evaluations > 0
    return {"users": len(per_user), "rows": total, "models": models, "published_users": pubs[0].users}


def _active_users(engine: sa.Engine, events_table: str) -> int:
    with engine.connect() as conn:
        return conn.execute(
            sa.text(f"SELECT count(DISTINCT user_id) FROM {events_table} WHERE item_id IS NOT NULL AND event_ts < :end AND event_ts >= :start"),
            {"start": "2026-01-10 00:00:00.000000+00:00", "end": "2026-02-01 00:00:00.000000+00:00"},
        ).scalar()


@pytest.fixture
def airflow_home(tmp_path: Path) -> Path:
    home = tmp_path / "airflow"
    home.mkdir()
    return home


def test_retrain_dag_end_to_end_on_embedded_sqlite(tmp_path, airflow_home):
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    engine = create_engine(url, output_schema="recsys")
    _shop(engine, WarehouseConfig())
    env = _airflow_env(airflow_home, warehouse_url=url, config_path=_config(tmp_path, source_schema=None, output_schema="recsys"))
    migrate = _run([AIRFLOW, "db", "migrate"], env, tmp_path / "migrate.log")
    assert migrate.returncode == 0, migrate.stderr[-2000:]
    _dag_test(env, tmp_path, 1)
    first = _check_publication(engine, "recsys")
    _dag_test(env, tmp_path, 2)
    second = _check_publication(engine, "recsys")
    assert (second["users"], second["rows"]) == (first["users"], first["rows"])
    engine.dispose()
