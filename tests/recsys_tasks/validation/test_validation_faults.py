"""Acceptance: bad warehouse data stops the nightly run, says why, and changes nothing downstream.

One clean run (as-of 2026-01-31) goes through every stage against PostgreSQL and publishes; its
champion, recommendations and publications are snapshotted. Then each fault of the issue "Data
validation with Great Expectations that stops bad data and says why" is injected into a fresh copy
of the warehouse for the *next* interval (as-of 2026-02-01, i.e. the events of 2026-01-31), and the
real stage functions the DAG tasks call (``stages.extract.run`` then ``stages.validate.run``) are run
against the shared output schema. Each must stop with a message that names the problem, leave the
published outputs byte-for-byte as they were, and (for validation faults) record the failed
expectation in ``validation_results``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from recsys_tasks import stages
from recsys_tasks.config import RecsysConfig, WarehouseConfig
from recsys_tasks.data import sources, synth
from recsys_tasks.data.snapshot import EVENTS_SCHEMA, read_snapshot
from recsys_tasks.data.warehouse import WarehouseError
from recsys_tasks.validation import DataValidationError

DAG_ID = "recsys_retrain"
UTC = timezone.utc
CLEAN_START, CLEAN_END = datetime(2026, 1, 30, tzinfo=UTC), datetime(2026, 1, 31, tzinfo=UTC)
# The interval every fault is injected into: the day after the clean run's.
DAY, END = datetime(2026, 1, 31, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
TOP_K = 5
OUTPUT_TABLES = ("model_registry", "recommendations", "publications")


@dataclass(frozen=True)
class Shop:
    url: str
    engine: sa.Engine
    output: str
    config: RecsysConfig
    events: pd.DataFrame
    items: pd.DataFrame
    published: dict[str, list[str]]  # table -> every row as PostgreSQL text, ordered
    clean_result: dict


def _rows_as_text(engine: sa.Engine, schema: str) -> dict[str, list[str]]:
    """Every row of the published outputs as PostgreSQL's text form of the row, in a stable order."""
    with engine.connect() as conn:
        return {
            table: list(
                conn.execute(sa.text(f'SELECT t::text FROM "{schema}"."{table}" AS t ORDER BY 1')).scalars()
            )
            for table in OUTPUT_TABLES
        }


def _context(shop_config: RecsysConfig, url: str, run_id: str, start: datetime, end: datetime, **overrides):
    cfg = shop_config.with_overrides(overrides) if overrides else shop_config
    return stages.context.make_context(
        dag_id=DAG_ID, run_id=run_id, interval_start=start, interval_end=end, warehouse_url=url, config=cfg
    )


def _drop_schemas(url: str, *schemas: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for schema in schemas:
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def shop(pg_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    """A synthetic shop in PostgreSQL, one clean run through every stage, and what it published."""
    tag = uuid.uuid4().hex[:8]
    source, output = f"vf_src_{tag}", f"vf_out_{tag}"
    events, items = synth.generate(
        n_users=200,
        n_items=80,
        start=datetime(2026, 1, 2, tzinfo=UTC),
        end=END,
        events_per_user_per_day=2.0,
        seed=5,
    )
    engine = sa.create_engine(pg_database_url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{source}"'))
    config = RecsysConfig.from_mapping(
        {
            "artifact_root": str(tmp_path_factory.mktemp("artifacts")),
            "warehouse": {"source_schema": source, "output_schema": output},
            "window": {"history_days": 14},
            "model": {
                "hidden_size": 16,
                "num_layers": 1,
                "num_heads": 2,
                "max_len": 20,
                "use_item_text": False,
            },
            "train": {
                "epochs": 1,
                "fine_tune_epochs": 1,
                "batch_size": 64,
                "device": "cpu",
                "log_every_seconds": 0,
            },
            "publish": {"top_k": TOP_K},
        }
    )
    ctx = _context(config, pg_database_url, "scheduled__2026-01-31T00:00:00+00:00", CLEAN_START, CLEAN_END)
    try:
        sources.load(engine, events, items, warehouse=config.warehouse)
        extracted = stages.extract.run(ctx)
        validated = stages.validate.run(ctx, extracted["snapshot"])
        trained = stages.train.run(ctx, validated["snapshot"])
        evaluated = stages.evaluate.run(
            ctx, validated["snapshot"], trained["model_version"], force_promote=True
        )
        decision = evaluated["decision"]
        assert decision["outcome"] == "promote", decision
        stages.promote.run(ctx, decision)
        stages.publish.run(ctx, validated["snapshot"])
        yield Shop(
            url=pg_database_url,
            engine=engine,
            output=output,
            config=config,
            events=events,
            items=items,
            published=_rows_as_text(engine, output),
            clean_result=validated,
        )
    finally:
        ctx.dispose()
        engine.dispose()
        _drop_schemas(pg_database_url, source, output)


@pytest.fixture
def warehouse(shop: Shop) -> Iterator[str]:
    """A fresh source schema loaded with the shop's frames, for one test to break as it likes."""
    schema = "vf_src_" + uuid.uuid4().hex[:8]
    with shop.engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        sources.load(shop.engine, shop.events, shop.items, warehouse=WarehouseConfig(source_schema=schema))
        yield schema
    finally:
        _drop_schemas(shop.url, schema)


def _execute(shop: Shop, sql: str, **params) -> int:
    with shop.engine.begin() as conn:
        return conn.execute(sa.text(sql), {"day": DAY, "end": END, **params}).rowcount


def _interval_count(shop: Shop, src: str) -> int:
    with shop.engine.connect() as conn:
        return conn.execute(
            sa.text(f'SELECT count(*) FROM "{src}".events WHERE event_ts >= :day AND event_ts < :end'),
            {"day": DAY, "end": END},
        ).scalar_one()


def _results(shop: Shop, run_id: str) -> list[sa.Row]:
    with shop.engine.connect() as conn:
        return conn.execute(
            sa.text(
                f"SELECT expectation, column_name, severity, success, observed_value, details "
                f'FROM "{shop.output}".validation_results WHERE run_id = :r'
            ),
            {"r": run_id},
        ).all()


def _run_verdict(shop: Shop, run_id: str) -> bool | None:
    with shop.engine.connect() as conn:
        return conn.execute(
            sa.text(f'SELECT success FROM "{shop.output}".validation_runs WHERE run_id = :r'), {"r": run_id}
        ).scalar_one_or_none()


def _assert_outputs_unchanged(shop: Shop) -> None:
    after = _rows_as_text(shop.engine, shop.output)
    for table in OUTPUT_TABLES:
        assert after[table] == shop.published[table], f"{shop.output}.{table} changed"


# ------------------------------------------------------------------------------------------ clean run


def test_clean_run_published_and_passed_without_warnings(shop: Shop):
    assert shop.clean_result["warnings"] == []
    assert shop.clean_result["interval_events"] > 0
    assert sum(1 for row in shop.published["model_registry"] if ",champion," in row) == 1
    assert len(shop.published["publications"]) == 1
    assert len(shop.published["recommendations"]) > 0
    results = _results(shop, "scheduled__2026-01-31T00:00:00+00:00")
    assert results and all(r.success for r in results)
    # the volume history the next interval's band is computed from
    assert _run_verdict(shop, "scheduled__2026-01-31T00:00:00+00:00") is True


# ------------------------------------------------------------------------------------- validation faults

# Each fault: SQL run against the fresh source schema ({src}) with :day/:end bound to the interval,
# the checks that must fail (and nothing else), and text the error message must quote.
_IN_DAY = "event_ts >= :day AND event_ts < :end"


def _first(kind: str | None = None, n: int = 1) -> str:
    """A subquery selecting the first ``n`` event ids of the interval (optionally of one type)."""
    where = _IN_DAY + (f" AND event_type = '{kind}'" if kind else "")
    return f'SELECT event_id FROM "{{src}}".events WHERE {where} ORDER BY event_id LIMIT {n}'


@dataclass(frozen=True)
class Fault:
    sql: str
    failed: frozenset[str]
    quoted: tuple[str, ...]  # in the DataValidationError message
    rows: int | None = None  # rows the SQL must touch, so a fault that injects nothing cannot pass
    observed: Callable[[Shop, str], str] | None = None  # quoted text computed from the broken data


FAULTS = {
    "null_user_ids": Fault(
        f'UPDATE "{{src}}".events SET user_id = NULL WHERE event_id IN ({_first(n=3)})',
        frozenset({"events.user_id_not_null"}),
        ("expect_column_values_to_not_be_null on user_id", '"unexpected_count": 3'),
        rows=3,
    ),
    "unknown_event_type": Fault(
        f"UPDATE \"{{src}}\".events SET event_type = 'teleport' WHERE event_id IN ({_first('view', 2)})",
        frozenset({"events.event_type_known"}),
        ("expect_column_values_to_be_in_set on event_type", '"unexpected_count": 2', '"teleport"'),
        rows=2,
    ),
    "negative_price": Fault(
        f'UPDATE "{{src}}".events SET value = -5 WHERE event_id IN ({_first("purchase")})',
        frozenset({"events.price_in_range"}),
        ("expect_column_values_to_be_between on value", '"examples": [-5.0]'),
        rows=1,
    ),
    "absurd_price": Fault(
        f'UPDATE "{{src}}".events SET value = 1e12 WHERE event_id IN ({_first("add_to_cart")})',
        frozenset({"events.price_in_range"}),
        ("expect_column_values_to_be_between on value", '"examples": [1000000000000.0]'),
        rows=1,
    ),
    "rating_out_of_range": Fault(
        f'UPDATE "{{src}}".events SET value = 9 WHERE event_id IN ({_first("rate")})',
        frozenset({"events.rating_in_range"}),
        ("expect_column_values_to_be_between on value", '"examples": [9.0]'),
        rows=1,
    ),
    "unknown_items_above_tolerance": Fault(
        f"UPDATE \"{{src}}\".events SET item_id = 'ghost-' || item_id WHERE {_IN_DAY} AND item_id IS NOT NULL",
        frozenset({"events.items_in_catalogue"}),
        ("expect_event_items_in_catalogue on item_id", "tolerance 1.00%", '"examples": ["ghost-'),
    ),
    # The clean run recorded the previous interval's volume; keep one event in ten.
    "volume_drop_90_percent": Fault(
        f'DELETE FROM "{{src}}".events AS e USING (SELECT event_id, row_number() OVER (ORDER BY event_id) AS n '
        f'FROM "{{src}}".events WHERE {_IN_DAY}) AS d WHERE e.event_id = d.event_id AND d.n % 10 <> 0',
        frozenset({"events.interval_volume_within_band"}),
        ("expect_table_row_count_to_be_between on event_ts",),
        observed=lambda shop, src: f"observed {_interval_count(shop, src)};",
    ),
    "empty_interval": Fault(
        f'DELETE FROM "{{src}}".events WHERE {_IN_DAY}',
        frozenset({"events.interval_volume_within_band"}),
        ("expect_table_row_count_to_be_between on event_ts", "observed 0;"),
    ),
    # A double load: the day's rows inserted again, byte for byte. Cleaning drops exact duplicate
    # rows, so it is the count of what cleaning dropped that stops the run (not event_id_unique).
    "duplicated_day": Fault(
        f'INSERT INTO "{{src}}".events SELECT * FROM "{{src}}".events WHERE {_IN_DAY}',
        frozenset({"events.no_duplicate_rows"}),
        ("expect_no_duplicate_event_rows on event_id",),
        observed=lambda shop, src: f'"duplicate_rows_dropped": {_interval_count(shop, src) // 2}',
    ),
    # A double load whose second copy differs (here: a re-derived session id): same ids, twice the rows.
    "duplicated_day_reloaded_differently": Fault(
        f'INSERT INTO "{{src}}".events SELECT event_id, user_id, item_id, event_type, event_ts, value, query, '
        f"'reloaded' FROM \"{{src}}\".events WHERE {_IN_DAY}",
        frozenset({"events.event_id_unique", "events.interval_volume_within_band"}),
        ("expect_column_values_to_be_unique on event_id", "expect_table_row_count_to_be_between on event_ts"),
        observed=lambda shop, src: f'"unexpected_count": {_interval_count(shop, src)}',
    ),
}


@pytest.mark.parametrize("name", list(FAULTS))
def test_validation_fault_stops_the_run_and_changes_nothing(shop: Shop, warehouse: str, name: str):
    fault = FAULTS[name]
    touched = _execute(shop, fault.sql.format(src=warehouse))
    if fault.rows is not None:
        assert touched == fault.rows, (
            f"the fault touched {touched} rows; the synthetic day lacks what it needs"
        )
    quoted = fault.quoted + ((fault.observed(shop, warehouse),) if fault.observed else ())
    run_id = f"manual__fault_{name}"
    ctx = _context(shop.config, shop.url, run_id, DAY, END, **{"warehouse.source_schema": warehouse})
    try:
        extracted = stages.extract.run(ctx)
        with pytest.raises(DataValidationError) as caught:
            stages.validate.run(ctx, extracted["snapshot"])
    finally:
        ctx.dispose()

    message = str(caught.value)
    failed = {r.key for r in caught.value.report.blocking_failures}
    assert failed == fault.failed, message
    for key in fault.failed:
        assert key in message
    for text in quoted:
        assert text in message, f"{text!r} not in: {message}"
    assert "validation.warning_expectations" in message  # says what to do

    stored = _results(shop, run_id)
    stored_failures = {r.details.split(":", 1)[0] for r in stored if not r.success}
    assert stored_failures == fault.failed
    assert all(r.severity == "blocking" for r in stored if not r.success)
    assert _run_verdict(shop, run_id) is False
    assert not (ctx.run_dir / "clean").exists(), "nothing downstream may read a failed run's data"
    _assert_outputs_unchanged(shop)


def test_clean_next_interval_passes(shop: Shop, warehouse: str):
    """The control for the faults above: the same copy, unbroken, passes for the same interval."""
    ctx = _context(
        shop.config, shop.url, "manual__control", DAY, END, **{"warehouse.source_schema": warehouse}
    )
    try:
        result = stages.validate.run(ctx, stages.extract.run(ctx)["snapshot"])
    finally:
        ctx.dispose()
    assert result["warnings"] == [] and result["interval_events"] == _interval_count(shop, warehouse)
    _assert_outputs_unchanged(shop)


# ------------------------------------------------------------------------------------ extraction faults


@pytest.mark.parametrize(
    ("sql", "quoted"),
    [
        pytest.param(
            'ALTER TABLE "{src}".events DROP COLUMN session_id',
            ("{src}.events", "session_id"),
            id="missing_event_column",
        ),
        pytest.param(
            'ALTER TABLE "{src}".items DROP COLUMN title', ("{src}.items", "title"), id="missing_item_column"
        ),
        # The interval query compares event_ts with the bound timestamps, so PostgreSQL refuses it.
        pytest.param(
            'ALTER TABLE "{src}".events ALTER COLUMN event_ts TYPE text USING event_ts::text',
            ("{src}.events", "event_ts", "text"),
            id="event_ts_as_text",
        ),
        # Text that is not a number reaches the extractor, which names the column it cannot convert.
        pytest.param(
            'ALTER TABLE "{src}".events ALTER COLUMN value TYPE text USING value::text; '
            "UPDATE \"{src}\".events SET value = 'n/a' WHERE event_type = 'purchase'",
            ("value", "'n/a'"),
            id="value_as_text",
        ),
    ],
)
def test_extraction_fault_stops_the_run_naming_table_and_column(shop: Shop, warehouse: str, sql: str, quoted):
    with shop.engine.begin() as conn:
        for statement in sql.format(src=warehouse).split("; "):
            conn.execute(sa.text(statement))
    run_id = f"manual__extract_{uuid.uuid4().hex[:6]}"
    ctx = _context(shop.config, shop.url, run_id, DAY, END, **{"warehouse.source_schema": warehouse})
    try:
        with pytest.raises(WarehouseError) as caught:
            stages.extract.run(ctx)
    finally:
        ctx.dispose()
    message = str(caught.value)
    for text in quoted:
        assert text.format(src=warehouse) in message, message
    # nothing was validated, so nothing was recorded: the task log's message is the whole story
    assert _results(shop, run_id) == [] and _run_verdict(shop, run_id) is None
    assert not (ctx.run_dir / "snapshot" / "events.parquet").exists()
    _assert_outputs_unchanged(shop)


# ------------------------------------------------------------------------------------ future timestamps


def test_future_timestamps_are_not_extracted_and_are_blocked_if_a_snapshot_holds_them(
    shop: Shop, warehouse: str
):
    """Future-dated events cannot reach a run through the warehouse, and validation stops them anyway.

    The extract reads exactly ``[history_start, interval_end)`` with bound parameters, so events
    stamped after the interval (a producer's clock running ahead) are excluded by design rather than
    detected. The second half covers the same fault arriving another way (a view that ignores the
    bounds, a hand-made snapshot): ``event_ts_in_window`` in the real validate stage stops it.
    """
    future = [datetime(2026, 2, 3, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)]
    with shop.engine.begin() as conn:
        conn.execute(
            sa.text(
                f'INSERT INTO "{warehouse}".events (event_id, user_id, item_id, event_type, event_ts) '
                "VALUES (:id, 'u-future', :item, 'view', :ts)"
            ),
            [
                {"id": f"future-{k}", "item": shop.items["item_id"].iloc[0], "ts": ts}
                for k, ts in enumerate(future)
            ],
        )
    run_id = "manual__fault_future_timestamps"
    ctx = _context(shop.config, shop.url, run_id, DAY, END, **{"warehouse.source_schema": warehouse})
    try:
        snapshot = Path(stages.extract.run(ctx)["snapshot"])
        events, _ = read_snapshot(snapshot)
        assert (
            events["event_ts"].max() < pd.Timestamp(END)
            and not events["event_id"].str.startswith("future").any()
        )

        leaked = events.tail(2).assign(
            event_id=["future-0", "future-1"], event_ts=pd.to_datetime(future, utc=True)
        )
        leaked = pd.concat([events, leaked], ignore_index=True)
        pq.write_table(
            pa.Table.from_pandas(leaked, schema=EVENTS_SCHEMA, preserve_index=False),
            snapshot / "events.parquet",
        )
        with pytest.raises(DataValidationError) as caught:
            stages.validate.run(ctx, str(snapshot))
    finally:
        ctx.dispose()
    message = str(caught.value)
    assert {r.key for r in caught.value.report.blocking_failures} == {"events.event_ts_in_window"}, message
    assert "expect_column_values_to_be_between on event_ts" in message
    assert '"unexpected_count": 2' in message and "2027-01-01T00:00:00+00:00" in message
    stored = [r for r in _results(shop, run_id) if not r.success]
    assert [(r.expectation, r.column_name) for r in stored] == [
        ("expect_column_values_to_be_between", "event_ts")
    ]
    assert _run_verdict(shop, run_id) is False
    _assert_outputs_unchanged(shop)


# ---------------------------------------------------------------------------------- SQL metacharacters

# Listed among the faults in the issue, but it is a pass case: text is data, bound and COPY-escaped,
# never spliced into SQL, so hostile text must load, extract and validate unchanged.
HOSTILE = (
    "'; DROP TABLE events; --",
    'O\'Brien "quoted" `ticks`',
    "semi;colon; UNION SELECT * FROM items",
    "back\\slash \\N \\\\ \\x00 C:\\temp\\",
    "tab\there, new\nline, cr\rreturn",
    "%s %(name)s :end $1 ? {{src}} /* not a comment */",
    "émoji 😀 — \u202eright-to-left\u202c",
)


def test_sql_metacharacters_in_text_pass_and_round_trip(shop: Shop, warehouse: str):
    events, items = shop.events.copy(), shop.items.copy()
    items.loc[: len(HOSTILE) - 1, "title"] = list(HOSTILE)
    items.loc[: len(HOSTILE) - 1, "category"] = list(reversed(HOSTILE))
    in_day = (events["event_ts"] >= DAY) & (events["event_ts"] < END)
    searches = events.index[in_day & (events["event_type"] == "search")][: len(HOSTILE)]
    assert len(searches) == len(HOSTILE), "the synthetic day has too few searches"
    events.loc[searches, "query"] = list(HOSTILE)
    events.loc[searches, "session_id"] = list(HOSTILE)
    with shop.engine.begin() as conn:
        conn.execute(sa.text(f'DROP TABLE "{warehouse}".events, "{warehouse}".items'))
    sources.load(shop.engine, events, items, warehouse=WarehouseConfig(source_schema=warehouse))

    ctx = _context(
        shop.config, shop.url, "manual__hostile_text", DAY, END, **{"warehouse.source_schema": warehouse}
    )
    try:
        result = stages.validate.run(ctx, stages.extract.run(ctx)["snapshot"])
    finally:
        ctx.dispose()
    assert result["warnings"] == []
    got_events, got_items = read_snapshot(Path(result["snapshot"]))
    titles = got_items.set_index("item_id")
    for k, text in enumerate(HOSTILE):
        item_id = items["item_id"].iloc[k]
        assert titles.at[item_id, "title"] == text and titles.at[item_id, "category"] == HOSTILE[-1 - k]
    by_id = got_events.set_index("event_id")
    for row, text in zip(searches, HOSTILE, strict=True):
        event_id = events.at[row, "event_id"]
        assert by_id.at[event_id, "query"] == text and by_id.at[event_id, "session_id"] == text
    with shop.engine.connect() as conn:  # and the warehouse still holds every row it was given
        assert conn.execute(sa.text(f'SELECT count(*) FROM "{warehouse}".events')).scalar_one() == len(events)
    _assert_outputs_unchanged(shop)


# ------------------------------------------------------------------------------------- invalid UTF-8

# PostgreSQL rejects invalid UTF-8 on the way in (a text column cannot hold it), so the fault can
# only reach a run from SQLite, whose TEXT holds whatever bytes a writer put there.


@pytest.mark.parametrize(("table", "column"), [("items", "title"), ("events", "query")])
def test_invalid_utf8_on_sqlite_stops_extraction_naming_table_and_column(
    shop: Shop, sqlite_url: str, table, column
):
    config = shop.config.with_overrides(
        {"warehouse.source_schema": None, "warehouse.output_schema": "recsys"}
    )
    engine = sa.create_engine(sqlite_url)
    try:
        day_events = shop.events[shop.events["event_ts"] >= pd.Timestamp(DAY) - pd.Timedelta(days=2)]
        sources.load(engine, day_events, shop.items, warehouse=config.warehouse)
        key = "event_type = 'search' AND event_ts >= '2026-01-31'" if table == "events" else "1 = 1"
        with engine.begin() as conn:
            rowid = conn.execute(sa.text(f"SELECT min(rowid) FROM {table} WHERE {key}")).scalar_one()
            conn.execute(
                sa.text(f"UPDATE {table} SET {column} = CAST(x'61fffe62' AS TEXT) WHERE rowid = :r"),
                {"r": rowid},
            )
    finally:
        engine.dispose()
    ctx = _context(config, sqlite_url, "manual__invalid_utf8", DAY, END)
    try:
        with pytest.raises(WarehouseError) as caught:
            stages.extract.run(ctx)
    finally:
        ctx.dispose()
    message = str(caught.value)
    assert f"table {table}" in message and f"column {column!r}" in message, message
    assert "UTF-8" in message, message
