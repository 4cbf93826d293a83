"""The run context: which interval a run is about, refused when no run could be about it."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from recsys_tasks.stages.context import RunContext, RunIntervalError, resolve_interval
from recsys_tasks.timeutil import day_start


def test_as_of_gives_the_day_that_ends_at_it() -> None:
    assert resolve_interval(None, None, as_of="2026-02-01") == (
        datetime(2026, 1, 31, tzinfo=timezone.utc),
        datetime(2026, 2, 1, tzinfo=timezone.utc),
    )


def test_an_as_of_in_the_future_is_refused_and_says_so() -> None:
    tomorrow = date.today() + timedelta(days=2)
    with pytest.raises(RunIntervalError, match="in the future"):
        resolve_interval(None, None, as_of=tomorrow.isoformat())
    with pytest.raises(RunIntervalError, match="in the future"):
        resolve_interval(None, None, as_of="2999-01-01")
    # Today's as-of date is the nightly run's: it covers yesterday, which is over.
    assert resolve_interval(None, None, as_of=date.today().isoformat())[1] <= datetime.now(timezone.utc)


@pytest.mark.parametrize("as_of", ["0001-01-01", "1969-12-31"])
def test_an_as_of_before_1970_is_refused_not_an_overflow(as_of: str) -> None:
    with pytest.raises(RunIntervalError, match="outside the range"):
        resolve_interval(None, None, as_of=as_of)


def test_a_data_interval_that_has_not_ended_is_refused() -> None:
    end = day_start(date.today() + timedelta(days=3))
    with pytest.raises(RunIntervalError, match="in the future"):
        resolve_interval(end - timedelta(days=1), end)


def test_not_a_date_is_named() -> None:
    with pytest.raises(RunIntervalError, match="not a date"):
        resolve_interval(None, None, as_of="yesterday")


def test_repr_never_shows_the_warehouse_password() -> None:
    ctx = RunContext(
        "recsys_retrain",
        "manual__1",
        datetime(2026, 1, 31, tzinfo=timezone.utc),
        datetime(2026, 2, 1, tzinfo=timezone.utc),
        "postgresql+psycopg://pipeline:s3cret-pw@db.example:5432/shop",
    )
    assert "s3cret-pw" not in repr(ctx) and "s3cret-pw" not in str(ctx)
    assert ctx.as_of == date(2026, 2, 1)


def test_a_storage_failure_names_the_stage_and_path(tmp_path, sqlite_url) -> None:
    """A vanished or unwritable artifact store is a StorageError naming the stage, not a bare OSError."""
    from recsys_tasks import stages
    from recsys_tasks.config import RecsysConfig
    from recsys_tasks.data import sources, synth
    from recsys_tasks.data.warehouse import create_engine
    from recsys_tasks.stages.context import StorageError

    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the artifact store should be")
    cfg = RecsysConfig.from_mapping({"artifact_root": str(blocker / "artifacts")})
    events, items = synth.generate(
        n_users=5, n_items=5, start=datetime(2026, 1, 30, tzinfo=timezone.utc),
        end=datetime(2026, 2, 1, tzinfo=timezone.utc), events_per_user_per_day=1.0, seed=1,
    )
    engine = create_engine(sqlite_url)
    sources.load(engine, events, items)
    engine.dispose()
    ctx = RunContext("recsys_retrain", "r", datetime(2026, 1, 31, tzinfo=timezone.utc), datetime(2026, 2, 1, tzinfo=timezone.utc), sqlite_url, cfg)
    try:
        with pytest.raises(StorageError, match=r"^extract: .* at .*not-a-directory") as info:
            stages.extract.run(ctx)
        assert "artifact_root" in str(info.value) and "unchanged" in str(info.value)
    finally:
        ctx.dispose()


# ---------------------------------------------------------------------------- source and output


def test_the_source_url_is_kept_out_of_repr_and_one_connection_is_one_engine(sqlite_url) -> None:
    day = (datetime(2026, 1, 31, tzinfo=timezone.utc), datetime(2026, 2, 1, tzinfo=timezone.utc))
    split = RunContext("recsys_retrain", "r", *day, "sqlite:///out.db", source_url="postgresql+psycopg://reader:s3cret-pw@db/shop")
    assert "s3cret-pw" not in repr(split)
    for source_url in (None, sqlite_url):
        ctx = RunContext("recsys_retrain", "r", *day, sqlite_url, source_url=source_url)
        try:
            assert ctx.source_engine is ctx.engine
        finally:
            ctx.dispose()


def test_extract_reads_the_source_database_and_writes_only_the_output_one(tmp_path) -> None:
    """Two SQLite files: the source holds the shop, the output gets our schema, and neither gets the other's."""
    from recsys_tasks import stages
    from recsys_tasks.config import RecsysConfig
    from recsys_tasks.data import sources, synth
    from recsys_tasks.data.warehouse import create_engine
    from recsys_tasks.stages.context import make_context

    events, items = synth.generate(
        n_users=5, n_items=5, start=datetime(2026, 1, 30, tzinfo=timezone.utc),
        end=datetime(2026, 2, 1, tzinfo=timezone.utc), events_per_user_per_day=1.0, seed=1,
    )
    source_url, output_url = f"sqlite:///{tmp_path / 'shop.db'}", f"sqlite:///{tmp_path / 'out.db'}"
    engine = create_engine(source_url, output_schema=None)
    sources.load(engine, events, items)
    engine.dispose()
    cfg = RecsysConfig.from_mapping({"artifact_root": str(tmp_path / "artifacts")})
    ctx = make_context(
        dag_id="recsys_retrain", run_id="split", interval_start=datetime(2026, 1, 31, tzinfo=timezone.utc),
        interval_end=datetime(2026, 2, 1, tzinfo=timezone.utc), warehouse_url=output_url, source_url=source_url, config=cfg,
    )
    try:
        assert ctx.source_engine is not ctx.engine
        out = stages.extract.run(ctx)
        assert out["events"] == len(events[events["event_ts"] < datetime(2026, 2, 1, tzinfo=timezone.utc)]) and out["items"] > 0
    finally:
        ctx.dispose()
    # The output schema sits next to the output file only; the source file has no schema attached to it.
    assert sorted(p.name for p in tmp_path.glob("*.db")) == ["out.db", "out.recsys.db", "shop.db"]


def test_an_output_that_is_not_postgres_or_sqlite_is_refused_before_the_run(tmp_path) -> None:
    from recsys_tasks.config import RecsysConfig
    from recsys_tasks.data.warehouse import WarehouseError
    from recsys_tasks.stages.context import make_context

    cfg = RecsysConfig.from_mapping({"artifact_root": str(tmp_path)})
    day = {"interval_start": datetime(2026, 1, 31, tzinfo=timezone.utc), "interval_end": datetime(2026, 2, 1, tzinfo=timezone.utc)}
    with pytest.raises(WarehouseError, match=r"a mysql database, .* only be written to postgresql or sqlite"):
        make_context(dag_id="d", run_id="r", warehouse_url="mysql+pymysql://u:p@h/db", config=cfg, **day)
    # Any dialect may be the source: nothing connects until a stage reads it.
    ctx = make_context(dag_id="d", run_id="r", warehouse_url="sqlite://", source_url="mysql+pymysql://u:p@h/db", config=cfg, **day)
    assert ctx.source_url == "mysql+pymysql://u:p@h/db"
