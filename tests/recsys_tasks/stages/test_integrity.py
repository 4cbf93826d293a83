"""A champion whose files changed after registration is refused by every stage that loads it.

One flipped bit, a truncated weights file or a deleted directory: warm start, evaluation, publish,
similar items, refresh and rollback each stop with a ModelIntegrityError that names the version,
the path and both checksums, and nothing is written. `full_retrain` is the way out.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from recsys_tasks import cli, stages
from recsys_tasks.config import RecsysConfig, to_dict
from recsys_tasks.data import sources, synth
from recsys_tasks.data.sequences import ItemVocab
from recsys_tasks.data.warehouse import create_engine, ensure_output_schema
from recsys_tasks.modeling.artifacts import WEIGHTS_FILE, build_model, save_model
from recsys_tasks.registry import ModelIntegrityError, get_champion, promote, register_model, store_model
from recsys_tasks.storage import ArtifactStore

AS_OF = datetime(2026, 2, 1, tzinfo=timezone.utc)


def _damage(model_dir: Path, how: str) -> None:
    weights = model_dir / WEIGHTS_FILE
    if how == "bit":
        data = bytearray(weights.read_bytes())
        data[len(data) // 2] ^= 0x01
        weights.write_bytes(bytes(data))
    elif how == "truncated":
        weights.write_bytes(weights.read_bytes()[:100])
    else:
        for file in model_dir.iterdir():
            file.unlink()
        model_dir.rmdir()


@pytest.fixture
def shop(pg_database_url: str, tmp_path: Path) -> Iterator[tuple[sa.Engine, RecsysConfig, stages.context.RunContext, str]]:
    source = "ig_" + uuid.uuid4().hex[:8]
    output = source + "_out"
    config = RecsysConfig.from_mapping(
        {
            "artifact_root": str(tmp_path / "artifacts"),
            "warehouse": {"source_schema": source, "output_schema": output},
            "window": {"history_days": 5},
            "model": {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "max_len": 12, "use_item_text": False},
            "train": {"device": "cpu", "epochs": 1, "fine_tune_epochs": 1},
            "publish": {"top_k": 3},
        }
    )
    engine = create_engine(pg_database_url, output_schema=output)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{source}"'))
    events, items = synth.generate(
        n_users=60, n_items=30, start=AS_OF - timedelta(days=6), end=AS_OF + timedelta(hours=12), events_per_user_per_day=3.0, seed=3
    )
    sources.load(engine, events, items, warehouse=config.warehouse)
    ensure_output_schema(engine, output)
    vocab = ItemVocab(sorted(items["item_id"].astype(str)))
    trained = save_model(
        tmp_path / "trained", kind="transformer", vocab=vocab, popularity=np.ones(len(vocab), dtype=np.float32),
        model=build_model("transformer", config.model, len(vocab)), model_cfg=config.model,
    )
    model_dir, checksum = store_model(trained, ArtifactStore.from_config(config), "m-champion")
    register_model(
        engine, output, model_version="m-champion", parent_version=None, kind="transformer", dag_id="test",
        run_id="seed", as_of=(AS_OF - timedelta(days=1)).date(), data_start=AS_OF - timedelta(days=6),
        data_end=AS_OF - timedelta(days=1), artifact_uri=str(model_dir), checksum=checksum, config=to_dict(config),
    )
    promote(engine, output, "m-champion", decision="seed")
    url = engine.url.render_as_string(hide_password=False)
    ctx = stages.context.RunContext("recsys_retrain", "manual__integrity", AS_OF - timedelta(days=1), AS_OF, url, config)
    snapshot = stages.validate.run(ctx, stages.extract.run(ctx)["snapshot"])["snapshot"]
    stages.publish.run(ctx, snapshot)  # a healthy publication, so refresh and rollback have something to redo
    try:
        yield engine, config, ctx, snapshot
    finally:
        ctx.dispose()
        engine.dispose()
        with sa.create_engine(pg_database_url).begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{source}" CASCADE'))
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{output}" CASCADE'))


def _written(engine: sa.Engine, schema: str) -> tuple[int, ...]:
    with engine.connect() as conn:
        return tuple(
            conn.execute(sa.text(f'SELECT count(*) FROM "{schema}".{table}')).scalar()
            for table in ("model_registry", "evaluations", "publications", "recommendations", "similar_items")
        )


@pytest.mark.parametrize("how", ["bit", "truncated", "deleted"])
def test_every_stage_refuses_a_damaged_champion_and_writes_nothing(shop, how: str) -> None:
    engine, config, ctx, snapshot = shop
    schema = config.warehouse.output_schema
    champion = get_champion(engine, schema)
    _damage(Path(champion.artifact_uri), how)
    before = _written(engine, schema)
    url = ctx.warehouse_url
    later = stages.context.RunContext("recsys_refresh", "hourly", AS_OF, AS_OF + timedelta(hours=12), url, config)
    attempts = {
        "train (warm start)": lambda: stages.train.run(ctx, snapshot),
        "publish": lambda: stages.publish.run(ctx, snapshot),
        "similar items": lambda: stages.similar_items.run(ctx, snapshot),
        "refresh": lambda: stages.refresh.run(later),
        "rollback": lambda: stages.rollback.run(url, "m-champion", config=config),
    }
    for stage, attempt in attempts.items():
        with pytest.raises(ModelIntegrityError) as info:
            attempt()
        message = str(info.value)
        assert "m-champion" in message and str(Path(champion.artifact_uri)) in message, stage
        assert "models verify" in message and "full_retrain" in message, stage
        if how == "bit":
            assert champion.checksum in message and "found" in message, stage
        assert _written(engine, schema) == before, f"{stage} wrote after refusing the champion"
    assert cli.main(["models", "verify", "--url", url, "--config", _config_file(config, ctx)]) == 1


def test_full_retrain_recovers_from_a_damaged_champion(shop) -> None:
    engine, config, ctx, snapshot = shop
    schema = config.warehouse.output_schema
    _damage(Path(get_champion(engine, schema).artifact_uri), "bit")
    trained = stages.train.run(ctx, snapshot, full_retrain=True)
    with pytest.raises(ModelIntegrityError):  # without full_retrain the broken champion still stops the run
        stages.evaluate.run(ctx, snapshot, trained["model_version"])
    evaluation = stages.evaluate.run(ctx, snapshot, trained["model_version"], full_retrain=True, force_promote=True)
    assert "m-champion failed verification" in evaluation["decision"]["reason"]
    assert "champion" not in evaluation["metrics"]
    stages.promote.run(ctx, evaluation["decision"])
    published = stages.publish.run(ctx, snapshot)
    assert published["model_version"] == trained["model_version"] and published["rows"] > 0


def _config_file(config: RecsysConfig, ctx: stages.context.RunContext) -> str:
    import json

    path = ctx.run_dir / "verify_config.json"
    path.write_text(json.dumps(to_dict(config)), encoding="utf-8")
    return str(path)
