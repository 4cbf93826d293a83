"""The hourly refresh against real databases: only users with new events change, atomically.

A synthetic shop is loaded up to 16:00 on 2026-02-01; the champion (an untrained transformer: the
refresh does not care how good it is) publishes for as-of 2026-02-01 from the events before
midnight, then a refresh of [12:00, 16:00) must rewrite exactly the users active in that hour.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from recsys_tasks import stages
from recsys_tasks.config import RecsysConfig, to_dict
from recsys_tasks.data import sources, synth
from recsys_tasks.data.publish_safety import TableBusy, UnsafePublication
from recsys_tasks.data.sequences import ItemVocab
from recsys_tasks.data.snapshot import extract_interval
from recsys_tasks.data.warehouse import create_engine, ensure_output_schema
from recsys_tasks.modeling.artifacts import build_model, save_model
from recsys_tasks.registry import promote, register_model, store_model
from recsys_tasks.stages.refresh import refresh_publication
from recsys_tasks.storage import ArtifactStore

AS_OF = datetime(2026, 2, 1, tzinfo=timezone.utc)
HOUR = (AS_OF + timedelta(hours=12), AS_OF + timedelta(hours=16))  # a 4-hour refresh interval
TOP_K = 5


def seed_shop_and_champion(engine: sa.Engine, config: RecsysConfig, tmp_path: Path, *, users: int = 300, items: int = 60) -> None:
    """Warehouse up to 16:00 of AS_OF plus a brand-new user in the refresh hour; champion + publication of AS_OF."""
    events, catalogue = synth.generate(
        n_users=users, n_items=items, start=AS_OF - timedelta(days=10), end=HOUR[1], events_per_user_per_day=3.0, seed=5
    )
    newcomer = events[events["item_id"].notna()].iloc[[0]].copy()
    newcomer["user_id"], newcomer["event_id"] = "newcomer", "ev-newcomer"
    newcomer["event_ts"] = pd.Timestamp(HOUR[0] + timedelta(minutes=30))
    events = pd.concat([events, newcomer], ignore_index=True)
    sources.load(engine, events, catalogue, warehouse=config.warehouse, replace=True)

    vocab = ItemVocab(sorted(catalogue["item_id"].astype(str)))
    model_cfg = config.model
    trained = save_model(
        tmp_path / "trained", kind="transformer", vocab=vocab, popularity=np.arange(len(vocab), dtype=np.float32),
        model=build_model("transformer", model_cfg, len(vocab)), model_cfg=model_cfg,
    )
    ensure_output_schema(engine, config.warehouse.output_schema)
    model_dir, checksum = store_model(trained, ArtifactStore.from_config(config), "m-refresh")
    register_model(
        engine, config.warehouse.output_schema, model_version="m-refresh", parent_version=None, kind="transformer",
        dag_id="test", run_id="seed", as_of=AS_OF.date(), data_start=AS_OF - timedelta(days=10), data_end=AS_OF,
        artifact_uri=str(model_dir), checksum=checksum, config=to_dict(config),
    )
    promote(engine, config.warehouse.output_schema, "m-refresh", decision="test seed")
    ctx = stages.context.RunContext("recsys_retrain", "nightly", AS_OF - timedelta(days=1), AS_OF, engine.url.render_as_string(hide_password=False), config)
    snap = extract_interval(engine, config.warehouse, start=ctx.history_start, end=AS_OF, out_dir=tmp_path / "snapshot")
    stages.publish.run(ctx, str(snap.path))
    ctx.dispose()


def _state(engine: sa.Engine, schema: str) -> tuple[sa.Row, dict[str, list[tuple]]]:
    with engine.connect() as conn:
        pub = conn.execute(sa.text(f'SELECT users, "rows", model_version FROM "{schema}".publications')).one()
        rows = conn.execute(sa.text(f'SELECT user_id, rank, item_id, run_id FROM "{schema}".recommendations ORDER BY user_id, rank')).all()
    by_user: dict[str, list[tuple]] = {}
    for r in rows:
        by_user.setdefault(r.user_id, []).append((r.rank, r.item_id, r.run_id))
    return pub, by_user


def _active_users(engine: sa.Engine, table: str) -> set[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(f"SELECT DISTINCT user_id FROM {table} WHERE item_id IS NOT NULL AND event_ts >= :s AND event_ts < :e"),
            {"s": HOUR[0], "e": HOUR[1]},
        ).all()
    return {r.user_id for r in rows}


def _config(tmp_path: Path, *, source_schema: str | None, output_schema: str) -> RecsysConfig:
    return RecsysConfig.from_mapping(
        {
            "artifact_root": str(tmp_path / "artifacts"),
            "warehouse": {"source_schema": source_schema, "output_schema": output_schema},
            "window": {"history_days": 7},
            "model": {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "max_len": 20, "use_item_text": False},
            "train": {"device": "cpu"},
            "publish": {"top_k": TOP_K},
        }
    )


@pytest.fixture
def pg_shop(pg_database_url, tmp_path):
    source = "rf_" + uuid.uuid4().hex[:8]
    output = source + "_out"
    engine = create_engine(pg_database_url, output_schema=output)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{source}"'))
    config = _config(tmp_path, source_schema=source, output_schema=output)
    try:
        seed_shop_and_champion(engine, config, tmp_path)
        yield engine, config, f'"{source}".events'
    finally:
        engine.dispose()
        with sa.create_engine(pg_database_url).begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{source}" CASCADE'))
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{output}" CASCADE'))


def _check_refresh(engine: sa.Engine, config: RecsysConfig, events_table: str) -> None:
    schema = config.warehouse.output_schema
    before_pub, before = _state(engine, schema)
    active = _active_users(engine, events_table)
    assert "newcomer" in active and "newcomer" not in before
    assert 5 < len(active) < len(before), "the fixture must have some, not all, users active in the hour"

    result = refresh_publication(engine, config, start=HOUR[0], end=HOUR[1], run_id="refresh-1")
    assert result.skipped is None and result.as_of == "2026-02-01" and result.model_version == "m-refresh"
    newcomers = active - set(before)  # "newcomer" and any synthetic user whose first events are today
    assert result.users == len(active) and result.new_users == len(newcomers) and result.rows == len(active) * TOP_K

    after_pub, after = _state(engine, schema)
    assert set(after) == set(before) | newcomers
    for user, recs in after.items():
        if user in active:
            assert {run for _, _, run in recs} == {"refresh-1"}, user
            assert [rank for rank, _, _ in recs] == list(range(1, TOP_K + 1))
            assert len({item for _, item, _ in recs}) == TOP_K
        else:
            assert recs == before[user], f"{user} had no new events and must not change"
    # The publication row matches its rows.
    assert (after_pub.users, after_pub.rows) == (len(after), sum(len(r) for r in after.values()))
    assert (after_pub.users, after_pub.rows) == (before_pub.users + len(newcomers), before_pub.rows + len(newcomers) * TOP_K)

    # Rerunning the same interval rewrites the same users with the same items; the counts stay.
    again = refresh_publication(engine, config, start=HOUR[0], end=HOUR[1], run_id="refresh-1")
    assert again.users == result.users and again.new_users == 0
    pub2, after2 = _state(engine, schema)
    assert (pub2.users, pub2.rows) == (after_pub.users, after_pub.rows)
    assert after2 == after


def test_refresh_rescores_only_active_users_on_postgres(pg_shop):
    _check_refresh(*pg_shop)


def test_refresh_on_embedded_sqlite(sqlite_url, tmp_path):
    config = _config(tmp_path, source_schema=None, output_schema="recsys")
    engine = create_engine(sqlite_url, output_schema="recsys")
    try:
        seed_shop_and_champion(engine, config, tmp_path)
        _check_refresh(engine, config, "events")
    finally:
        engine.dispose()


def test_refresh_skips_what_it_must_not_touch(pg_shop):
    engine, config, _ = pg_shop
    schema = config.warehouse.output_schema
    before = _state(engine, schema)
    # An hour before the publication's as-of date: its events are already in the publication.
    old = refresh_publication(engine, config, start=AS_OF - timedelta(hours=1), end=AS_OF, run_id="r-old")
    assert old.skipped and "already covers" in old.skipped
    # An hour without events.
    empty = refresh_publication(engine, config, start=HOUR[1], end=HOUR[1] + timedelta(hours=1), run_id="r-empty")
    assert empty.skipped and "no user has item events" in empty.skipped
    # A champion that did not make the publication: no mixing of two models in one publication.
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE \"{schema}\".publications SET model_version = 'someone-else'"))
    other = refresh_publication(engine, config, start=HOUR[0], end=HOUR[1], run_id="r-other")
    assert other.skipped and "champion is m-refresh" in other.skipped
    assert _state(engine, schema)[1] == before[1]


class CollapsedScores:
    """Fault injection: the corrupted model of the issue, whose scores are -inf but for one item at 0,
    so a ranked list is that one item with score 0."""

    def __init__(self, real) -> None:
        self.real, self.vocab, self.kind = real, real.vocab, real.kind

    def item_vectors(self) -> np.ndarray:
        return self.real.item_vectors()

    def recommend(self, histories, *, k, exclude=None, batch_users=4096, allowed=None):
        for start in range(0, len(histories), batch_users):
            n = min(batch_users, len(histories) - start)
            top, scores = np.zeros((n, k), dtype=np.int64), np.full((n, k), -np.inf, dtype=np.float32)
            top[:, 0], scores[:, 0] = 1, 0.0
            yield start, top, scores


def test_refresh_never_replaces_good_lists_with_a_broken_models_short_ones(pg_shop, monkeypatch):
    from recsys_tasks.serving import recommender as serving

    engine, config, _ = pg_shop
    schema = config.warehouse.output_schema
    before = _state(engine, schema)
    assert {len(recs) for recs in before[1].values()} == {TOP_K}
    load = serving.load_recommender
    monkeypatch.setattr(serving, "load_recommender", lambda model_dir, device="auto": CollapsedScores(load(model_dir, device=device)))
    with pytest.raises(UnsafePublication, match=rf"user '.+' has [12] recommendation\(s\) but min\(top_k={TOP_K}, \d+ items"):
        refresh_publication(engine, config, start=HOUR[0], end=HOUR[1], run_id="r-broken")
    assert _state(engine, schema) == before


def test_refresh_waits_for_its_publication_then_gives_up_clearly(pg_shop):
    engine, config, _ = pg_shop
    schema = config.warehouse.output_schema
    before = _state(engine, schema)
    quick = config.with_overrides({"publish": {"lock_timeout_ms": 100, "lock_retries": 1}})
    with engine.connect() as other:  # e.g. a republish of that date holding its publication row
        other.execute(sa.text(f'SELECT as_of FROM "{schema}".publications FOR UPDATE'))
        with pytest.raises(TableBusy, match=rf"another run writing to it .* held {schema}\.recommendations .*the refresh of the publication of 2026-02-01 replaced nothing"):
            refresh_publication(engine, quick, start=HOUR[0], end=HOUR[1], run_id="r-locked")
    assert _state(engine, schema) == before
    assert refresh_publication(engine, quick, start=HOUR[0], end=HOUR[1], run_id="r-locked").skipped is None


def test_refresh_without_publication_skips(pg_database_url, tmp_path):
    output = "rf_" + uuid.uuid4().hex[:8] + "_out"
    engine = create_engine(pg_database_url, output_schema=output)
    try:
        result = refresh_publication(engine, _config(tmp_path, source_schema=None, output_schema=output), start=HOUR[0], end=HOUR[1], run_id="r")
        assert result.skipped and "no publication yet" in result.skipped
    finally:
        engine.dispose()
        with sa.create_engine(pg_database_url).begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{output}" CASCADE'))


def test_run_interval_from_asset_events():
    day = timedelta(days=1)
    explicit = [{"extra": {"interval_start": "2026-01-05T00:00:00+00:00", "interval_end": "2026-01-06T00:00:00Z"}, "timestamp": None}]
    assert stages.context.run_interval(data_interval_start=None, data_interval_end=None, asset_events=explicit) == (
        datetime(2026, 1, 5, tzinfo=timezone.utc), datetime(2026, 1, 6, tzinfo=timezone.utc))
    by_day = [{"extra": {"as_of": "2026-01-07"}, "timestamp": datetime(2026, 1, 9, 3, tzinfo=timezone.utc)}, {"extra": {"as_of": "2026-01-08"}}]
    assert stages.context.run_interval(data_interval_start=None, data_interval_end=None, asset_events=by_day) == (
        datetime(2026, 1, 8, tzinfo=timezone.utc) - day, datetime(2026, 1, 8, tzinfo=timezone.utc))
    stamp = datetime(2026, 1, 9, 3, tzinfo=timezone.utc)
    # Airflow's own interval of an asset-triggered run spans the events' arrival: the event decides.
    assert stages.context.run_interval(
        data_interval_start=stamp - timedelta(minutes=5), data_interval_end=stamp, asset_events=[{"extra": {}, "timestamp": stamp}]
    ) == (stamp - day, stamp)
    # The as_of param beats everything; without events the data interval is used.
    assert stages.context.run_interval(data_interval_start=None, data_interval_end=None, as_of="2026-01-03", asset_events=by_day)[1] == datetime(2026, 1, 3, tzinfo=timezone.utc)
    assert stages.context.run_interval(data_interval_start=stamp - day, data_interval_end=stamp) == (stamp - day, stamp)
    with pytest.raises(ValueError, match="not an ISO date or timestamp"):
        stages.context.run_interval(data_interval_start=None, data_interval_end=None, asset_events=[{"extra": {"interval_start": "x", "interval_end": "y"}}])
