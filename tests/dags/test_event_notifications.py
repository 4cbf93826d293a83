"""Promotions and rollbacks are announced through RECSYS_NOTIFY, from the DAG tasks that make them.

The task callables of the real DAGs run with a fake Airflow context on a real SQLite registry: the
promote task promotes through the library and announces it (a backfill's promotion into the past
says the current champion stays); the rollback task restores a version whose files match its
checksum and announces it; a channel that fails does not fail the task.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from recsys_tasks import registry
from recsys_tasks.config import RecsysConfig
from recsys_tasks.data.warehouse import create_engine, ensure_output_schema
from recsys_tasks.stages.context import make_context

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
if str(DAGS) not in sys.path:
    sys.path.append(str(DAGS))  # as Airflow does for its DAG folder


@pytest.fixture(scope="module")
def dags():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    return bag.dags


@pytest.fixture
def shop(tmp_path, monkeypatch):
    """A SQLite output schema with m0 (as-of 01-30), m1 (champion from 02-01) and the candidate m2 (02-02)."""
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    cfg_file = tmp_path / "recsys.json"
    cfg_file.write_text(json.dumps({"artifact_root": str(tmp_path / "artifacts")}), encoding="utf-8")
    monkeypatch.setenv("RECSYS_CONFIG", str(cfg_file))
    monkeypatch.setenv("RECSYS_NOTIFY", "log")
    engine = create_engine(url, output_schema="recsys")
    ensure_output_schema(engine, "recsys")
    for version, day in (("m0", date(2026, 1, 30)), ("m1", date(2026, 2, 1)), ("m2", date(2026, 2, 2))):
        model_dir = tmp_path / "artifacts" / "models" / version
        model_dir.mkdir(parents=True)
        (model_dir / "weights.bin").write_bytes(version.encode())
        registry.register_model(
            engine, "recsys", model_version=version, parent_version=None, kind="sasrec", dag_id="recsys_retrain",
            run_id=f"scheduled__{day}", as_of=day, data_start=datetime(2026, 1, 1, tzinfo=UTC),
            data_end=datetime(day.year, day.month, day.day, tzinfo=UTC), artifact_uri=str(model_dir),
            checksum=registry.directory_checksum(model_dir), config={},
        )
    registry.promote(engine, "recsys", "m1", decision="first model", as_of=date(2026, 2, 1))
    yield engine, url, RecsysConfig.from_file(cfg_file)
    engine.dispose()


def _context(dag, run_id: str, params: dict) -> dict:
    ti = SimpleNamespace(dag_id=dag.dag_id, task_id="t", run_id=run_id, try_number=1, log_url="http://ui/log")
    return {"ti": ti, "run_id": run_id, "dag": dag, "params": params}


def _promote(dags, monkeypatch, url, cfg, as_of: date, decision: dict) -> dict:
    import recsys_context

    end = datetime(as_of.year, as_of.month, as_of.day, tzinfo=UTC)
    ctx = make_context(dag_id="recsys_retrain", run_id="r", interval_start=end - timedelta(days=1), interval_end=end, warehouse_url=url, config=cfg)
    monkeypatch.setattr(recsys_context, "run_context", lambda context: ctx)
    dag = dags["recsys_retrain"]
    return dag.get_task("promote").python_callable({"decision": decision}, **_context(dag, f"scheduled__{as_of}", {}))


def _logged(caplog, capfd) -> str:
    captured = capfd.readouterr()
    return caplog.text + captured.err + captured.out


def test_the_promote_task_announces_the_new_champion(dags, shop, monkeypatch, caplog, capfd):
    engine, url, cfg = shop
    decision = {"outcome": "promote", "challenger": "m2", "champion": "m1", "reason": "ndcg@10 0.31 vs champion 0.28: +10.7%"}
    with caplog.at_level(logging.INFO, logger="recsys.notify"):
        promoted = _promote(dags, monkeypatch, url, cfg, date(2026, 2, 2), decision)
    text = _logged(caplog, capfd)
    assert promoted["current"] is True and registry.get_champion(engine, "recsys").model_version == "m2"
    assert "[recsys] model m2 promoted: champion from as-of 2026-02-02" in text
    assert "it replaces m1" in text and "ndcg@10 0.31 vs champion 0.28" in text and "scheduled__2026-02-02" in text


def test_a_backfills_promotion_says_the_current_champion_stays(dags, shop, monkeypatch, caplog, capfd):
    engine, url, cfg = shop
    decision = {"outcome": "promote", "challenger": "m0", "champion": None, "reason": "beats most-popular"}
    with caplog.at_level(logging.INFO, logger="recsys.notify"):
        promoted = _promote(dags, monkeypatch, url, cfg, date(2026, 1, 30), decision)
    text = _logged(caplog, capfd)
    assert promoted["current"] is False and registry.get_champion(engine, "recsys").model_version == "m1"
    assert "[recsys] model m0 promoted for as-of 2026-01-30 (backfill)" in text and "the current champion stays" in text


def test_the_rollback_dag_restores_and_announces(dags, shop, monkeypatch, caplog, capfd):
    import recsys_context

    engine, url, _cfg = shop
    registry.promote(engine, "recsys", "m2", decision="better", as_of=date(2026, 2, 2))
    monkeypatch.setattr(recsys_context, "output_url", lambda: url)
    dag = dags["recsys_rollback"]
    with caplog.at_level(logging.INFO, logger="recsys.notify"):
        result = dag.get_task("rollback").python_callable(**_context(dag, "manual__1", {"model_version": "m1", "republish": False}))
    text = _logged(caplog, capfd)
    assert result == {"champion": "m1", "republished": None}
    assert registry.get_champion(engine, "recsys").model_version == "m1"
    assert "[recsys] rollback: model m1 is champion again" in text and "Nothing was republished" in text


def test_a_channel_that_fails_does_not_fail_the_task(dags, shop, monkeypatch, caplog, capfd):
    import recsys_notify

    engine, url, cfg = shop

    def broken(*args, **kwargs):
        raise ConnectionError("SMTP server unreachable")

    monkeypatch.setattr(recsys_notify, "_email", broken)
    monkeypatch.setenv("RECSYS_NOTIFY", "log,email")
    decision = {"outcome": "promote", "challenger": "m2", "champion": "m1", "reason": "better"}
    with caplog.at_level(logging.INFO, logger="recsys.notify"):
        promoted = _promote(dags, monkeypatch, url, cfg, date(2026, 2, 2), decision)
    assert promoted["model_version"] == "m2" and registry.get_champion(engine, "recsys").model_version == "m2"
    text = _logged(caplog, capfd)
    assert "could not send the notification" in text and "SMTP server unreachable" in text


def test_the_new_dags_are_configured_deliberately(dags):
    freshness, rollback = dags["recsys_freshness"], dags["recsys_rollback"]
    assert set(freshness.task_ids) == {"check_publication"} and set(rollback.task_ids) == {"rollback"}
    for dag in (freshness, rollback):
        assert "recsys" in dag.tags and dag.doc_md and dag.max_active_runs == 1 and dag.catchup is False
    assert freshness.get_task("check_publication").retries >= 1
    assert rollback.timetable.can_be_scheduled is False  # manual only
    assert set(rollback.params.keys()) == {"model_version", "republish"}
