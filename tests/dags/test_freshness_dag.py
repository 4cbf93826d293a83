"""recsys_freshness run by Airflow (`airflow dags test`): a late publication is reported once, a present one never.

A real Airflow (SQLite metadata), the real notifier on the ``log`` channel (asserted from the run's
log), the real Airflow Variable that remembers the reported date; the warehouse is SQLite with the
output schema migrated and no publication of 2026-02-02. About a minute: three runs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from test_retrain_e2e import AIRFLOW, REPO, _run

from recsys_tasks.data.warehouse import create_engine, ensure_output_schema
from recsys_tasks.sqlfiles import statement

ALERT = "[recsys] Recommendations for {} not published by 06:00 UTC"


def _env(home: Path, warehouse: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "RECSYS_"))}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
        AIRFLOW_CONN_RECSYS_WAREHOUSE=json.dumps({"conn_type": "sqlite", "host": str(warehouse)}),
        RECSYS_PUBLISH_DEADLINE="06:00",
        RECSYS_NOTIFY="log",
    )
    return env


def _check(env: dict[str, str], tmp_path: Path, logical_date: str) -> str:
    proc = _run([AIRFLOW, "dags", "test", "recsys_freshness", logical_date], env, tmp_path / f"freshness-{logical_date[:16]}.log")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "state=success" in out, out[-4000:]
    return out


def test_a_late_publication_is_reported_once_and_a_present_one_never(tmp_path):
    home, warehouse = tmp_path / "airflow", tmp_path / "warehouse.db"
    home.mkdir()
    engine = create_engine(f"sqlite:///{warehouse}", output_schema="recsys")
    ensure_output_schema(engine, "recsys")
    env = _env(home, warehouse)
    migrate = _run([AIRFLOW, "db", "migrate"], env, tmp_path / "migrate.log")
    assert migrate.returncode == 0, migrate.stderr[-2000:]

    late = _check(env, tmp_path, "2026-02-02T06:15:00+00:00")
    assert ALERT.format("2026-02-02") in late
    assert "logical date 2026-02-01" in late

    again = _check(env, tmp_path, "2026-02-02T06:30:00+00:00")
    assert "not published by 06:00 UTC: late" in again  # still late ...
    assert ALERT.format("2026-02-02") not in again  # ... but reported once
    assert "reported already" in again

    with engine.begin() as conn:
        conn.execute(
            statement("upsert_publication", schema="recsys"),
            {"as_of": "2026-02-03", "run_id": "scheduled__2026-02-02T00:00:00+00:00", "model_version": "m7", "users": 93,
             "rows": 930, "top_k": 10, "published_at": "2026-02-03 00:42:00.000000+00:00"},
        )
    engine.dispose()
    on_time = _check(env, tmp_path, "2026-02-03T06:15:00+00:00")
    assert "2026-02-03 published at 2026-02-03 00:42 UTC by model m7" in on_time
    assert "not published by" not in on_time
