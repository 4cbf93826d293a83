"""A publication ranked by N user-hash shards (the DAG's mapped publish_shard tasks) equals the one-task publication.

On PostgreSQL and SQLite, through the real stages: the same users get the same lists in the same
order with the same reasons; a retried shard changes nothing; a shard whose staging table does not
hold what its task reported, or a missing shard, is refused and the previous publication stays.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from recsys_tasks import stages
from recsys_tasks.config import RecsysConfig, WarehouseConfig
from recsys_tasks.data import sources, synth
from recsys_tasks.data.publish_locks import shard_stage_name
from recsys_tasks.data.publish_safety import UnsafePublication
from recsys_tasks.data.shards import shard_of
from recsys_tasks.data.warehouse import create_engine

AS_OF = datetime(2026, 2, 1, tzinfo=timezone.utc)
LISTS = "SELECT user_id, rank, item_id, reason, score FROM {s}.recommendations WHERE as_of = :d ORDER BY user_id, rank"


@pytest.fixture(params=["postgresql", "sqlite"])
def shop(request, tmp_path):
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_database_url")
        source, output = "src_" + uuid.uuid4().hex[:8], "out_" + uuid.uuid4().hex[:8]
        with sa.create_engine(url).begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{source}"'))
    else:
        url, source, output = f"sqlite:///{tmp_path / 'warehouse.db'}", None, "recsys"
    engine = create_engine(url, output_schema=output)
    events, items = synth.generate(
        n_users=300, n_items=80, start=datetime(2026, 1, 10, tzinfo=timezone.utc), end=AS_OF,
        events_per_user_per_day=2.0, seed=7,
    )
    sources.load(engine, events, items, warehouse=WarehouseConfig(source_schema=source))
    cfg = RecsysConfig.from_mapping({
        "artifact_root": str(tmp_path / "artifacts"),
        "warehouse": {"source_schema": source, "output_schema": output},
        "window": {"history_days": 14},
        "model": {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "max_len": 20, "use_item_text": False},
        "train": {"epochs": 1, "batch_size": 64},
        "publish": {"top_k": 5, "new_item_slots": 1, "max_per_category": 3},
    })
    yield url, cfg, output, engine
    engine.dispose()
    if request.param == "postgresql":
        with sa.create_engine(url).begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{source}" CASCADE'))
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{output}" CASCADE'))


def _context(url, cfg, *, shards: int):
    return stages.context.make_context(
        dag_id="recsys_retrain", run_id="scheduled__2026-02-01", interval_start=AS_OF - timedelta(days=1),
        interval_end=AS_OF, warehouse_url=url, config=cfg.with_overrides({"publish.shards": shards}),
    )


def _sharded(ctx, snapshot) -> dict:
    """What the DAG does: plan, one mapped task per shard, one merge."""
    return stages.publish.merge(ctx, [stages.publish.stage_shard(ctx, shard) for shard in stages.publish.plan(ctx, snapshot)])


def _whole_frame_lists(ctx, snapshot, version) -> list[tuple]:
    from recsys_tasks.data.snapshot import read_snapshot
    from recsys_tasks.registry import get_model
    from recsys_tasks.serving.ranking import champion_rows
    from recsys_tasks.serving.recommender import load_recommender

    events, items = read_snapshot(ctx.store.path(snapshot))
    recommender = load_recommender(get_model(ctx.engine, ctx.schema, version).verified_dir(ctx.store))
    users = sorted(set(events.loc[events["item_id"].notna(), "user_id"].astype(str)))
    rows = champion_rows(
        recommender, events, items, users=users, config=ctx.config.publish, k=ctx.config.publish.top_k,
        as_of=AS_OF.date(), run_id=ctx.run_id, model_version=version,
    )
    return sorted((r.user_id, r.rank, r.item_id, r.reason) for r in rows)


def _lists(engine, schema):
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(LISTS.format(s=f'"{schema}"')), {"d": "2026-02-01"})]


def test_four_shards_publish_what_one_task_publishes(shop):
    url, cfg, schema, engine = shop
    ctx = _context(url, cfg, shards=1)
    snapshot = stages.validate.run(ctx, stages.extract.run(ctx)["snapshot"])["snapshot"]
    trained = stages.train.run(ctx, snapshot)
    stages.promote.run(ctx, stages.evaluate.run(ctx, snapshot, trained["model_version"], force_promote=True)["decision"])

    one = stages.publish.run(ctx, snapshot)
    reference = _lists(engine, schema)
    # The task ranks chunk by chunk with the rules counted over all users in one streaming pass:
    # the same lists as ranking the whole frame with the rules counted from it.
    assert [r[:4] for r in reference] == _whole_frame_lists(ctx, snapshot, one["model_version"])
    # The DAG's path with publish.shards: 1 (one mapped task that publishes outright) is the same publication.
    assert _sharded(ctx, snapshot) == {**one, "shards": 1, "lock_waits": 0}
    assert [r[:4] for r in _lists(engine, schema)] == [r[:4] for r in reference]
    # Each shard task reads its users in chunks (window.chunk_rows): several per shard here.
    sharded_ctx = _context(url, cfg.with_overrides({"window.chunk_rows": 400}), shards=4)
    plan = stages.publish.plan(sharded_ctx, snapshot)
    assert [p["shard"] for p in plan] == [0, 1, 2, 3] and len({p["events"] for p in plan}) == 4
    four = _sharded(sharded_ctx, snapshot)

    assert (four["users"], four["rows"], four["model_version"]) == (one["users"], one["rows"], one["model_version"])
    lists = _lists(engine, schema)
    assert [r[:4] for r in lists] == [r[:4] for r in reference], "same users, same lists, same order, same reasons"
    assert all(abs(a[4] - b[4]) < 1e-4 for a, b in zip(lists, reference, strict=True))
    users = sorted({r[0] for r in lists})
    assert set(shard_of(users, 4)) == {0, 1, 2, 3}, "every shard ranked some users"

    # A retried shard replaces its own staging table: publishing again gives the same publication.
    assert _sharded(sharded_ctx, snapshot)["rows"] == one["rows"] and _lists(engine, schema)[:50] == lists[:50]

    # A shard table that lost rows after its task reported them is refused; nothing changes.
    staged = [stages.publish.stage_shard(sharded_ctx, shard) for shard in plan]
    victim = shard_stage_name("recommendations", AS_OF.date(), ctx.run_id, 1, 4)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DELETE FROM "{schema}"."{victim}" WHERE rank = 1'))
    with pytest.raises(UnsafePublication, match="shard 1 of 4.*the shard task reported"):
        stages.publish.merge(sharded_ctx, staged)
    with pytest.raises(UnsafePublication, match="not each of 0..N-1 once"):
        stages.publish.merge(sharded_ctx, staged[:3])
    assert _lists(engine, schema) == lists
    sharded_ctx.dispose()
    ctx.dispose()
