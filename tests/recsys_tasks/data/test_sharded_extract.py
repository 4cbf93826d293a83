"""Extraction split into user shards by the warehouse gives the snapshot one stream gives.

On PostgreSQL and SQLite, through the stage functions the DAG's extract tasks call: every user is
in exactly the shard ``shards.shard_of`` names (the warehouse and Python agree), the parts together
hold the same rows as the one-stream snapshot, grouped by user, and later stages read them as one.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pandas as pd
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from recsys_tasks import stages
from recsys_tasks.config import RecsysConfig, WarehouseConfig
from recsys_tasks.data import sources, synth
from recsys_tasks.data.event_window import read_event_window
from recsys_tasks.data.shards import shard_of
from recsys_tasks.data.user_chunks import event_files, grouped_by_user, user_chunks
from recsys_tasks.data.warehouse import create_engine

END = datetime(2026, 2, 1, tzinfo=UTC)


@pytest.fixture(params=["postgresql", "sqlite"])
def warehouse(request, tmp_path):
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_database_url")
        source, output = "src_" + uuid.uuid4().hex[:8], "out_" + uuid.uuid4().hex[:8]
        with sa.create_engine(url).begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{source}"'))
    else:
        url, source, output = f"sqlite:///{tmp_path / 'warehouse.db'}", None, "recsys"
    engine = create_engine(url, output_schema=output)
    events, items = synth.generate(
        n_users=120, n_items=40, start=datetime(2026, 1, 20, tzinfo=UTC), end=END, events_per_user_per_day=2.0, seed=3
    )
    # ids a hash must treat byte for byte: non-ASCII and padded
    recent = events.loc[events["event_ts"] >= pd.Timestamp(END - timedelta(days=2)), "user_id"].unique()
    events.loc[events["user_id"] == recent[0], "user_id"] = "Zoë 🛒"
    events.loc[events["user_id"] == recent[-1], "user_id"] = " padded "
    plain = events.index[(events["event_ts"] >= pd.Timestamp(END - timedelta(days=2))) & events["user_id"].str.startswith("u")]
    events.loc[plain[0], "user_id"] = None  # an event without a user: for validation to name
    sources.load(engine, events, items, warehouse=WarehouseConfig(source_schema=source))
    yield url, source, output
    engine.dispose()
    if request.param == "postgresql":
        with sa.create_engine(url).begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{source}" CASCADE'))
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{output}" CASCADE'))


def _extract(tmp_path, url, source, output, *, shards: int) -> tuple[dict, object]:
    cfg = RecsysConfig.from_mapping({
        "artifact_root": str(tmp_path / "artifacts"),
        "warehouse": {"source_schema": source, "output_schema": output, "extract_shards": shards, "chunk_rows": 50},
        "window": {"history_days": 7},
    })
    ctx = stages.context.make_context(
        dag_id="recsys_retrain", run_id=f"shards-{shards}", interval_start=END - timedelta(days=1), interval_end=END,
        warehouse_url=url, config=cfg,
    )
    try:
        snapshot = stages.extract.complete([stages.extract.run_shard(ctx, shard) for shard in stages.extract.plan(ctx)])
        return snapshot, ctx.store.path(snapshot["snapshot"])
    finally:
        ctx.dispose()


def test_four_warehouse_shards_hold_what_one_stream_holds(warehouse, tmp_path):
    url, source, output = warehouse
    one, one_dir = _extract(tmp_path, url, source, output, shards=1)
    four, four_dir = _extract(tmp_path, url, source, output, shards=4)
    assert (four["events"], four["items"]) == (one["events"], one["items"]) and one["events"] > 500

    parts = event_files(four_dir / "events.parquet")
    assert [p.name for p in parts] == [f"part-{i:05d}-of-00004.parquet" for i in range(4)]
    for i, part in enumerate(parts):  # the warehouse put each user where shard_of says
        users = set(pq.read_table(part, columns=["user_id"]).column(0).to_pylist())
        assert (None in users) == (i == 0), "events without a user are extracted, in shard 0"
        users.discard(None)
        assert users and set(shard_of(sorted(users), 4)) == {i}
    assert grouped_by_user(four_dir / "events.parquet") and grouped_by_user(one_dir / "events.parquet")

    by_id = lambda frame: frame.sort_values("event_id").reset_index(drop=True)
    whole = by_id(pd.concat(user_chunks(one_dir / "events.parquet")))
    sharded = by_id(pd.concat(user_chunks(four_dir / "events.parquet", chunk_rows=37)))
    pd.testing.assert_frame_equal(sharded, whole)
    assert {"Zoë 🛒", " padded "} <= set(sharded["user_id"])

    cutoff = END - timedelta(hours=12)
    a, b = (read_event_window(d / "events.parquet", cutoff=cutoff) for d in (one_dir, four_dir))
    assert a.sequences.user_ids == b.sequences.user_ids
    assert a.holdout.sort_values(["user_id", "rank"]).values.tolist() == b.holdout.sort_values(["user_id", "rank"]).values.tolist()


def test_a_shard_missing_from_the_plan_is_named():
    done = [{"shard": i, "shards": 3, "snapshot": "s3://b/snap", "items": 3, "events": 5} for i in (0, 2)]
    with pytest.raises(ValueError, match=r"each of its event shards extracted once, got shards \[0, 2\] of \[3\]"):
        stages.extract.complete(done)
    assert stages.extract.complete([*done, {**done[0], "shard": 1}])["events"] == 15
