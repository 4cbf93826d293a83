"""Operations wiring of the DAGs: GPU queue + pool, assets, the asset schedule, the hourly refresh, notifications."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
if str(DAGS) not in sys.path:
    sys.path.append(str(DAGS))  # as Airflow does for its DAG folder


def _load(env: dict[str, str] | None = None) -> dict:
    """The DagBag in a fresh interpreter, since the DAG files read the environment at parse time."""
    code = (
        "import json, sys; sys.path.append(sys.argv[1])\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        "_list = lambda cb: cb if isinstance(cb, list) else [cb] if cb else []  # a mapped task keeps one callback unwrapped\n"
        "bag = DagBag(dag_folder=sys.argv[1])\n"
        "out = {'errors': {k: str(v) for k, v in bag.import_errors.items()}, 'dags': {}}\n"
        "for d in bag.dags.values():\n"
        "    out['dags'][d.dag_id] = {\n"
        "        'tasks': {t.task_id: {'queue': t.queue, 'pool': t.pool, 'outlets': [a.uri for a in t.outlets],\n"
        "                              'callbacks': [type(c).__name__ for c in _list(t.on_failure_callback)], 'retries': t.retries}\n"
        "                  for t in d.tasks},\n"
        "        'schedule': [a.uri for a in d.timetable.asset_condition.objects] if getattr(d.timetable, 'asset_condition', None) is not None else None,\n"
        "        'tags': sorted(d.tags), 'max_active_runs': d.max_active_runs, 'doc': bool(d.doc_md)}\n"
        "print(json.dumps(out))\n"
    )
    import json
    import os

    full_env = {k: v for k, v in os.environ.items() if not k.startswith("RECSYS_")}
    full_env.update(env or {})
    proc = subprocess.run([sys.executable, "-c", code, str(DAGS)], capture_output=True, text=True, env=full_env, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["errors"] == {}
    return result["dags"]


@pytest.fixture(scope="module")
def default_dags() -> dict:
    return _load()


def test_gpu_tasks_use_default_queue_and_pool_without_configuration(default_dags):
    tasks = default_dags["recsys_retrain"]["tasks"]
    for name in ("train", "evaluate", "publish_shard"):
        assert (tasks[name]["queue"], tasks[name]["pool"]) == ("default", "default_pool"), name


def test_gpu_tasks_follow_queue_and_pool_from_the_environment():
    tasks = _load({"RECSYS_GPU_QUEUE": "gpu", "RECSYS_GPU_POOL": "recsys_gpu"})["recsys_retrain"]["tasks"]
    for name in ("train", "evaluate", "publish_shard"):
        assert (tasks[name]["queue"], tasks[name]["pool"]) == ("gpu", "recsys_gpu"), name
    for name in ("extract", "validate", "decide", "promote"):
        assert (tasks[name]["queue"], tasks[name]["pool"]) == ("default", "default_pool"), name


def test_publish_and_refresh_update_the_recommendations_asset(default_dags):
    assert default_dags["recsys_retrain"]["tasks"]["publish"]["outlets"] == ["recsys://recsys/recommendations"]
    assert default_dags["recsys_refresh"]["tasks"]["refresh"]["outlets"] == ["recsys://recsys/recommendations"]
    custom = _load({"RECSYS_RECOMMENDATIONS_ASSET": "recsys://shop_recs/recommendations"})
    assert custom["recsys_retrain"]["tasks"]["publish"]["outlets"] == ["recsys://shop_recs/recommendations"]


def test_retrain_can_be_scheduled_on_an_upstream_asset(default_dags):
    assert default_dags["recsys_retrain"]["schedule"] is None  # the cron timetable by default
    dags = _load({"RECSYS_SCHEDULE_ASSET": "warehouse://shop/events"})
    assert dags["recsys_retrain"]["schedule"] == ["warehouse://shop/events"]


def test_refresh_dag_shape(default_dags):
    dag = default_dags["recsys_refresh"]
    assert set(dag["tasks"]) == {"refresh"}
    assert dag["max_active_runs"] == 1 and "recsys" in dag["tags"] and dag["doc"]
    assert dag["tasks"]["refresh"]["retries"] >= 1


def test_every_task_reports_failures(default_dags):
    for dag in default_dags.values():
        for task_id, task in dag["tasks"].items():
            assert task["callbacks"] == ["RecsysFailureNotifier"], task_id


def _fake_context(exc: BaseException | None) -> dict:
    ti = SimpleNamespace(dag_id="recsys_retrain", task_id="train", run_id="scheduled__2026-02-01", try_number=2, log_url="http://ui/log")
    return {"ti": ti, "run_id": ti.run_id, "exception": exc, "logical_date": "2026-02-01T00:00:00+00:00"}


def _logged(caplog, capfd) -> str:
    """What the notifier logged: caplog, or the stream Airflow's structlog setup writes it to."""
    captured = capfd.readouterr()
    return caplog.text + captured.err + captured.out


def test_notifier_logs_task_run_and_reason(caplog, capfd, monkeypatch):
    from recsys_notify import RecsysFailureNotifier

    monkeypatch.delenv("RECSYS_NOTIFY", raising=False)
    with caplog.at_level(logging.ERROR, logger="recsys.notify"):
        RecsysFailureNotifier()(_fake_context(ValueError("no item events before the cutoff")))
    text = _logged(caplog, capfd)
    assert "recsys_retrain.train failed in run scheduled__2026-02-01" in text
    assert "ValueError: no item events before the cutoff" in text and "try 2" in text and "http://ui/log" in text


def test_notifier_email_and_slack_say_why_they_cannot_send(caplog, capfd, monkeypatch):
    from recsys_notify import RecsysFailureNotifier

    monkeypatch.setenv("RECSYS_NOTIFY", "email,slack,pager")
    monkeypatch.delenv("RECSYS_NOTIFY_EMAIL", raising=False)
    with caplog.at_level(logging.ERROR, logger="recsys.notify"):
        RecsysFailureNotifier()(_fake_context(None))
    text = _logged(caplog, capfd)
    assert "RECSYS_NOTIFY_EMAIL is empty" in text
    assert "unknown channel 'pager'" in text
    assert "no exception recorded" in text
    try:
        import airflow.providers.slack  # noqa: F401
    except ImportError:
        assert "apache-airflow-providers-slack is not installed" in text


def test_notifier_sends_email_through_the_smtp_provider(monkeypatch):
    pytest.importorskip("airflow.providers.smtp.notifications.smtp")
    from airflow.providers.smtp.notifications import smtp
    from recsys_notify import RecsysFailureNotifier

    sent = []
    monkeypatch.setattr(smtp.SmtpNotifier, "notify", lambda self, context: sent.append((self.to, self.subject, self.html_content)))
    monkeypatch.setenv("RECSYS_NOTIFY", "email")
    monkeypatch.setenv("RECSYS_NOTIFY_EMAIL", "ml@example.com, ops@example.com")
    RecsysFailureNotifier()(_fake_context(RuntimeError("boom")))
    assert len(sent) == 1
    to, subject, html = sent[0]
    assert list(to) == ["ml@example.com", "ops@example.com"]
    assert "recsys_retrain.train failed" in subject and "RuntimeError: boom" in html
