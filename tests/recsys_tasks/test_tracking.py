"""The MLflow mirror against a real ``mlflow server`` (SQLite backend, local artifact directory).

Two nights of the library stages on an embedded SQLite warehouse, with ``mlflow.tracking_uri``
pointing at the server; everything is checked with plain REST calls: a run with the config as
params, per-epoch curves, the evaluation metrics and the report; a model version per registered
version with our tags; the ``champion`` alias following promotion and rollback. With the server
unreachable or silent the stages still succeed and a warning is logged, within seconds.

The server runs from its own virtualenv ``.venv-mlflow`` (MLflow cannot be installed with our
pins), which ``scripts/test.sh`` builds.
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests

from recsys_tasks import stages, tracking
from recsys_tasks.config import ConfigError, RecsysConfig
from recsys_tasks.data import sources, synth
from recsys_tasks.data.warehouse import create_engine
from recsys_tasks.registry import get_champion, get_model

REPO = Path(__file__).resolve().parents[2]
MLFLOW_VENV = REPO / ".venv-mlflow"
DAY = timedelta(days=1)
NIGHT_1 = datetime(2026, 2, 1, tzinfo=timezone.utc)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    """A started ``mlflow server``; :meth:`ready` waits for its ``/health`` (it starts while the stages warm up)."""

    def __init__(self, proc: subprocess.Popen, url: str, log_file: Path):
        self.proc, self.url, self.log_file = proc, url, log_file

    def ready(self) -> None:
        deadline = time.monotonic() + 90
        while True:
            try:
                if requests.get(f"{self.url}/health", timeout=1).ok:
                    return
            except requests.RequestException:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not become healthy: {self.log_file.read_text()[-3000:]}")
            time.sleep(0.3)


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory) -> Iterator[MlflowServer]:
    """A real MLflow tracking server on 127.0.0.1 (SQLite backend) serving artifacts from a temporary directory."""
    binary = MLFLOW_VENV / "bin" / "mlflow"
    if not (binary.exists() and (MLFLOW_VENV / ".installed").exists()):
        pytest.fail(
            f"{MLFLOW_VENV} (the MLflow server's own virtualenv) is missing or incomplete: run scripts/test.sh, "
            "which builds it (see the warning it printed if it could not)"
        )
    home = tmp_path_factory.mktemp("mlflow")
    port = _free_port()
    log_file = home / "server.log"
    command = [
        str(binary), "server", "--backend-store-uri", f"sqlite:///{home / 'mlflow.db'}",
        "--artifacts-destination", str(home / "artifacts"), "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]
    with log_file.open("w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=home)
    yield MlflowServer(proc, f"http://127.0.0.1:{port}", log_file)
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def shop(tmp_path):
    """An embedded SQLite warehouse with a small synthetic shop, and a tiny-model config."""
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    engine = create_engine(url, output_schema="recsys")
    events, items = synth.generate(
        n_users=200, n_items=60, start=datetime(2026, 1, 15, tzinfo=timezone.utc), end=NIGHT_1 + DAY,
        events_per_user_per_day=2.0, seed=3,
    )
    sources.load(engine, events, items)
    engine.dispose()
    cfg = RecsysConfig.from_mapping({
        "artifact_root": str(tmp_path / "artifacts"),
        "window": {"history_days": 10},
        "model": {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "max_len": 20, "use_item_text": False},
        "train": {"epochs": 2, "fine_tune_epochs": 2, "batch_size": 64, "patience": 5, "device": "cpu"},
        "evaluation": {"min_holdout_users": 5, "bootstrap_resamples": 100},
    })
    return url, cfg


def _night(url: str, cfg: RecsysConfig, as_of: datetime, *, before_train=lambda: None) -> dict:
    """extract, validate, train, evaluate (forced promotion), promote: what the DAG does."""
    ctx = stages.context.make_context(
        dag_id="recsys_retrain", run_id=f"scheduled__{as_of:%Y-%m-%d}", interval_start=as_of - DAY,
        interval_end=as_of, warehouse_url=url, config=cfg,
    )
    try:
        snapshot = stages.validate.run(ctx, stages.extract.run(ctx)["snapshot"])["snapshot"]
        before_train()
        trained = stages.train.run(ctx, snapshot)
        evaluated = stages.evaluate.run(ctx, snapshot, trained["model_version"], force_promote=True)
        promoted = stages.promote.run(ctx, evaluated["decision"])
    finally:
        ctx.dispose()
    return {"trained": trained, "evaluated": evaluated, "promoted": promoted}


class Rest:
    """Plain REST calls to check what the server holds."""

    def __init__(self, url: str):
        self.url = url

    def get(self, endpoint: str, **query) -> dict:
        response = requests.get(f"{self.url}/api/2.0/mlflow/{endpoint}", params=query, timeout=10)
        response.raise_for_status()
        return response.json()

    def post(self, endpoint: str, body: dict) -> dict:
        response = requests.post(f"{self.url}/api/2.0/mlflow/{endpoint}", json=body, timeout=10)
        response.raise_for_status()
        return response.json()

    def run_of(self, experiment: str, airflow_run_id: str) -> dict:
        exp = self.get("experiments/get-by-name", experiment_name=experiment)["experiment"]["experiment_id"]
        runs = self.post("runs/search", {"experiment_ids": [exp], "filter": f"tags.`recsys.run_id` = '{airflow_run_id}'"})
        assert len(runs.get("runs", [])) == 1, runs
        return runs["runs"][0]

    def champion(self, name: str) -> dict:
        return self.get("registered-models/alias", name=name, alias="champion")["model_version"]


def _tags(entity: dict) -> dict:
    return {t["key"]: t["value"] for t in entity.get("tags", [])}


def test_runs_model_versions_and_the_champion_alias_are_mirrored(shop, mlflow_server):
    url, base = shop
    cfg = base.with_overrides({"mlflow.tracking_uri": mlflow_server.url, "mlflow.experiment": "nightly"})
    rest = Rest(mlflow_server.url)

    first = _night(url, cfg, NIGHT_1, before_train=mlflow_server.ready)
    v1 = first["trained"]["model_version"]

    run = rest.run_of("nightly", "scheduled__2026-02-01")
    params = {p["key"]: p["value"] for p in run["data"]["params"]}
    assert params["model.hidden_size"] == "16" and params["train.epochs"] == "2"
    assert params["evaluation.primary_metric"] == "ndcg@10" and params["mlflow.registered_model"] == "recsys"
    assert params["publish.exclude_event_types"] == '["purchase"]'
    assert run["info"]["status"] == "FINISHED"
    assert _tags(run["data"])["recsys.decision"] == first["evaluated"]["decision"]["outcome"]
    run_id = run["info"]["run_id"]

    # Per-epoch validation curve: one point per epoch, step = epoch, the values of the train history.
    history = rest.get("metrics/get-history", run_id=run_id, metric_key="val.ndcg_at_10")["metrics"]
    assert sorted(m["step"] for m in history) == [1, 2]
    local = Path(cfg.artifact_root).resolve().joinpath("recsys_retrain", "2026-02-01", "scheduled__2026-02-01")
    expected = {row["epoch"]: row["ndcg@10"] for row in json.loads((local / "train_history.json").read_text())}
    assert {m["step"]: m["value"] for m in history} == pytest.approx(expected)
    latest = {m["key"]: m["value"] for m in run["data"]["metrics"]}
    for role in ("challenger", "baseline"):
        assert latest[f"eval.{role}.ndcg_at_10"] == pytest.approx(first["evaluated"]["metrics"][role]["ndcg@10"])
    assert "train.loss" in latest

    # The report and the model files are the run's artifacts, byte for byte.
    listed = {f["path"] for f in rest.get("artifacts/list", run_id=run_id).get("files", [])}
    assert {"report.html", "model"} <= listed
    artifact_root = run["info"]["artifact_uri"].split(":", 1)[1].lstrip("/")
    report = requests.get(f"{mlflow_server.url}/api/2.0/mlflow-artifacts/artifacts/{artifact_root}/report.html", timeout=10)
    assert report.ok and report.content == Path(first["evaluated"]["report"]).read_bytes()
    model_files = {f["path"] for f in rest.get("artifacts/list", run_id=run_id, path="model")["files"]}
    record = get_model(create_engine(url, output_schema="recsys"), "recsys", v1)
    assert model_files == {f"model/{p.name}" for p in Path(record.artifact_uri).iterdir() if p.is_file()}

    # The registered version is an MLflow model version with our tags, and it holds the alias.
    versions = rest.get("model-versions/search", filter="name = 'recsys'")["model_versions"]
    assert len(versions) == 1
    champion = rest.champion("recsys")
    assert _tags(champion) == {
        "model_version": v1, "checksum": record.checksum, "kind": "transformer", "as_of": "2026-02-01",
    }
    assert champion["run_id"] == run_id and champion["source"].endswith(f"{run_id}/artifacts/model")

    # The second night's promotion moves the alias; a rollback moves it back.
    second = _night(url, cfg, NIGHT_1 + DAY)
    v2 = second["trained"]["model_version"]
    assert second["promoted"]["current"] and v2 != v1
    assert _tags(rest.champion("recsys"))["model_version"] == v2
    assert _tags(rest.champion("recsys"))["parent_version"] == v1, "the warm start is recorded"
    assert len(rest.get("model-versions/search", filter="name = 'recsys'")["model_versions"]) == 2
    assert rest.run_of("nightly", "scheduled__2026-02-02")["info"]["run_id"] != run_id

    stages.rollback.run(url, v1, config=cfg, republish=False)
    assert _tags(rest.champion("recsys"))["model_version"] == v1
    assert rest.champion("recsys")["version"] == champion["version"]

    # A retried train task finds the same run and version: no second curve, no second version.
    ctx = stages.context.make_context(
        dag_id="recsys_retrain", run_id="scheduled__2026-02-01", interval_start=NIGHT_1 - DAY,
        interval_end=NIGHT_1, warehouse_url=url, config=cfg,
    )
    tracking.mirror_training(ctx, v1, [{"epoch": 1, "ndcg@10": 0.0}])
    ctx.dispose()
    assert len(rest.get("metrics/get-history", run_id=run_id, metric_key="val.ndcg_at_10")["metrics"]) == 2
    assert len(rest.get("model-versions/search", filter="name = 'recsys'")["model_versions"]) == 2


def test_an_unreachable_or_silent_server_only_warns(shop, caplog):
    url, base = shop
    closed = _free_port()  # nothing listens there once the probe socket is closed
    cfg = base.with_overrides({"mlflow.tracking_uri": f"http://127.0.0.1:{closed}", "mlflow.timeout_s": 2})

    with caplog.at_level(logging.WARNING, logger="recsys_tasks.tracking"):
        night = _night(url, cfg, NIGHT_1)
    assert night["promoted"]["current"]
    engine = create_engine(url, output_schema="recsys")
    assert get_champion(engine, "recsys").model_version == night["trained"]["model_version"]
    warnings = [r.getMessage() for r in caplog.records if r.name == tracking.__name__ and r.levelno == logging.WARNING]
    assert len(warnings) == 3, warnings  # train, evaluate, promote
    assert all("MLflow sync" in w and f"127.0.0.1:{closed}" in w for w in warnings)

    # Each sync gives up fast: refused at once, or after the timeout when the server accepts and never answers.
    start = time.monotonic()
    tracking.mirror_champion(cfg, engine)
    assert time.monotonic() - start < 2
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        silent_uri = f"http://127.0.0.1:{silent.getsockname()[1]}"
        quiet = cfg.with_overrides({"mlflow.tracking_uri": silent_uri, "mlflow.timeout_s": 0.5})
        caplog.clear()
        start = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="recsys_tasks.tracking"):
            tracking.mirror_champion(quiet, engine)
        assert time.monotonic() - start < 3
    assert any("timed out" in r.getMessage().lower() for r in caplog.records), [r.getMessage() for r in caplog.records]
    engine.dispose()


def test_names_mlflow_refuses_are_rewritten_and_the_config_is_flattened():
    assert tracking.metric_name("ndcg@10") == "ndcg_at_10"
    assert tracking.metric_name("eval.new_items.hr@5") == "eval.new_items.hr_at_5"
    assert tracking.metric_name("a,b=c") == "a_b_c"
    assert dict(tracking.flatten({"a": {"b": 1, "c": [1, "x"], "d": {}}, "e": None, "f": "s"})) == {
        "a.b": "1", "a.c": '[1, "x"]', "a.d": "{}", "e": "null", "f": "s",
    }
    history = [{"epoch": 1, "loss": 2.5, "ndcg@10": 0.25}, {"epoch": 2, "loss": 2.0, "ndcg@10": 0.5}]
    points = list(tracking.epoch_metrics(history))
    assert [(p["key"], p["step"], p["value"]) for p in points] == [
        ("train.loss", 1, 2.5), ("val.ndcg_at_10", 1, 0.25), ("train.loss", 2, 2.0), ("val.ndcg_at_10", 2, 0.5),
    ]


def test_the_tracking_uri_must_be_an_http_server():
    assert RecsysConfig().mlflow.tracking_uri is None, "off by default"
    with pytest.raises(ConfigError, match=r"mlflow\.tracking_uri='file:./mlruns': use the http\(s\):// URL"):
        RecsysConfig.from_mapping({"mlflow": {"tracking_uri": "file:./mlruns"}})
    with pytest.raises(ConfigError, match=r"mlflow\.registered_model=.*without quotes"):
        RecsysConfig.from_mapping({"mlflow": {"registered_model": "it's"}})
