"""Champion/challenger acceptance on PostgreSQL, through the real pipeline stages.

One scenario over five as-of dates of a synthetic shop:
1. a weak model (trained on shuffled, signal-free data) is forced in as champion;
2. a real challenger beats it and is promoted: exactly one champion afterwards;
3. a challenger trained on shuffled data is rejected and the champion row is unchanged;
4. a backfill for an older date publishes its own partition but cannot take the champion slot;
5. rollback restores an earlier champion and republishes with it, and rolling forward again
   restores the previous recommendations.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from recsys_tasks import stages
from recsys_tasks.config import RecsysConfig, WarehouseConfig
from recsys_tasks.data import sources, synth
from recsys_tasks.registry import get_champion, get_model

DAY = timedelta(days=1)


@pytest.fixture
def shop(pg_database_url, tmp_path):
    source = "src_" + uuid.uuid4().hex[:8]
    output = source + "_out"
    engine = sa.create_engine(pg_database_url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{source}"'))
    events, items = synth.generate(
        n_users=250, n_items=100, start=datetime(2026, 1, 10, tzinfo=timezone.utc),
        end=datetime(2026, 2, 5, tzinfo=timezone.utc), events_per_user_per_day=2.5, seed=5,
    )
    sources.load(engine, events, items, warehouse=WarehouseConfig(source_schema=source))
    cfg = RecsysConfig.from_mapping({
        "artifact_root": str(tmp_path / "artifacts"),
        "warehouse": {"source_schema": source, "output_schema": output},
        "window": {"history_days": 14},
        "model": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "max_len": 20, "use_item_text": False},
        "train": {"epochs": 4, "fine_tune_epochs": 2, "batch_size": 64},
        "evaluation": {"min_holdout_users": 20},
        "publish": {"top_k": 5},
    })
    yield pg_database_url, cfg, output
    engine.dispose()
    with sa.create_engine(pg_database_url).begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{source}" CASCADE'))
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{output}" CASCADE'))


def _shuffled(snapshot: str, out: Path, seed: int) -> str:
    """The same snapshot with item ids permuted across events: no sequential signal left."""
    out.mkdir(parents=True, exist_ok=True)
    events = pq.read_table(Path(snapshot) / "events.parquet")
    frame = events.to_pandas()
    has_item = frame["item_id"].notna().to_numpy()
    values = frame.loc[has_item, "item_id"].to_numpy().copy()
    np.random.default_rng(seed).shuffle(values)
    frame.loc[has_item, "item_id"] = values
    pq.write_table(pa.Table.from_pandas(frame, schema=events.schema, preserve_index=False), out / "events.parquet")
    pq.write_table(pq.read_table(Path(snapshot) / "items.parquet"), out / "items.parquet")
    return str(out)


def _run(url, cfg, as_of: datetime, *, shuffle=False, force=False, full_retrain=None):
    ctx = stages.context.make_context(
        dag_id="recsys_retrain", run_id=f"scheduled__{as_of:%Y-%m-%d}", interval_start=as_of - DAY,
        interval_end=as_of, warehouse_url=url, config=cfg,
    )
    snapshot = stages.validate.run(ctx, stages.extract.run(ctx)["snapshot"])["snapshot"]
    train_on = _shuffled(snapshot, ctx.run_dir / "shuffled", seed=as_of.day) if shuffle else snapshot
    trained = stages.train.run(ctx, train_on, full_retrain=full_retrain)
    evaluation = stages.evaluate.run(ctx, snapshot, trained["model_version"], force_promote=force)
    decision = evaluation["decision"]
    if decision["outcome"] == "promote":
        stages.promote.run(ctx, decision)
    else:
        stages.promote.keep_champion(ctx, decision)
    published = stages.publish.run(ctx, snapshot)
    assert Path(evaluation["report"]).is_file()
    ctx.dispose()
    return trained["model_version"], decision, published


def _rows(engine, schema, sql, **params):
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(sql.format(s=f'"{schema}"')), params)]


def test_champion_challenger_backfill_and_rollback(shop):
    url, cfg, schema = shop
    engine = sa.create_engine(url)
    champions = "SELECT model_version FROM {s}.model_registry WHERE status = 'champion'"
    latest = "SELECT user_id, rank, item_id, score, model_version FROM {s}.latest_recommendations ORDER BY user_id, rank"

    # 1. A signal-free model, forced in.
    weak, decision, _ = _run(url, cfg, datetime(2026, 2, 2, tzinfo=timezone.utc), shuffle=True, force=True)
    assert decision["outcome"] == "promote" and _rows(engine, schema, champions) == [(weak,)]

    # 2. A real challenger (from scratch, so it owes nothing to the weak one) is promoted.
    strong, decision, _ = _run(url, cfg, datetime(2026, 2, 3, tzinfo=timezone.utc), full_retrain=True)
    assert decision["outcome"] == "promote", decision["reason"]
    assert decision["values"]["challenger"] > decision["values"]["champion"]
    assert _rows(engine, schema, champions) == [(strong,)]
    assert get_model(engine, schema, weak).status == "retired"

    # 3. A shuffled challenger is rejected; the champion row does not change at all.
    before = _rows(engine, schema, "SELECT * FROM {s}.model_registry WHERE status = 'champion'")
    noise, decision, published = _run(url, cfg, datetime(2026, 2, 4, tzinfo=timezone.utc), shuffle=True, full_retrain=True)
    assert decision["outcome"] == "keep", decision["reason"]
    assert _rows(engine, schema, "SELECT * FROM {s}.model_registry WHERE status = 'champion'") == before
    assert get_model(engine, schema, noise).status == "rejected"
    assert published["model_version"] == strong

    # 4. A backfill for an older date: its own dated partition, never the champion slot.
    old, decision, published = _run(url, cfg, datetime(2026, 2, 1, tzinfo=timezone.utc), force=False)
    assert decision["outcome"] == "keep" and decision["reason"].startswith("backfill"), decision["reason"]
    assert _rows(engine, schema, champions) == [(strong,)]
    assert published["as_of"] == "2026-02-01"
    dates = _rows(engine, schema, "SELECT as_of::text FROM {s}.publications ORDER BY as_of")
    assert dates == [("2026-02-01",), ("2026-02-02",), ("2026-02-03",), ("2026-02-04",)]
    strong_rows = _rows(engine, schema, latest)
    assert {r[4] for r in strong_rows} == {strong}  # latest still shows 2026-02-04

    # 5. Rollback to the weak model republishes the newest date with it; rolling forward restores.
    result = stages.rollback.run(url, weak, config=cfg)
    assert result["champion"] == weak and result["republished"]["model_version"] == weak
    assert get_champion(engine, schema).model_version == weak
    assert {r[4] for r in _rows(engine, schema, latest)} == {weak}
    stages.rollback.run(url, strong, config=cfg)
    assert _rows(engine, schema, champions) == [(strong,)]
    assert _rows(engine, schema, latest) == strong_rows
    engine.dispose()
