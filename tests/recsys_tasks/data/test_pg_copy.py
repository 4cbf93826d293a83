"""Extraction by COPY on PostgreSQL writes the same Parquet as fetching rows, for every value the contract allows.

Each test extracts the same source twice, once by COPY and once with it switched off
(``pg_copy.COPY_OPTION``), and compares the files; a spy on ``pg_copy.copy_query`` checks that the
first really went through COPY. Hand-written expectations check that the values are the tricky ones,
so that both paths cannot be wrong the same way.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from recsys_tasks.config import RecsysConfig, WarehouseConfig
from recsys_tasks.data import pg_copy, sources
from recsys_tasks.data.sequences import EVENT_COLUMNS, ITEM_COLUMNS
from recsys_tasks.data.snapshot import EVENTS_SCHEMA, extract_interval
from recsys_tasks.data.warehouse import WarehouseError, create_engine

START = datetime(2026, 3, 1, tzinfo=UTC)
END = datetime(2026, 3, 2, tzinfo=UTC)

#: Text that CSV must quote, escape or keep apart: separators, quotes, line breaks, backslashes,
#: what other tools read as NULL, non-ASCII, surrounding blanks and the empty string.
TRICKY_TEXT = [
    "007", "plain", "a,b", 'say "hi"', "two\nlines", "cr\r\nlf", "back\\slash", "\\N", "NULL", "NA", "nan",
    "ünïcødé ✓ 漢字 🙂", "", "  padded  ", "tab\there", '"', ",", "x" * 5000,
]
VALUES = [None, 0.1, 1 / 3, 3.0, 19.5, 1e300, 5e-324, -2.5, 1e-7, 123456789.123456789]


@pytest.fixture
def copy_calls(monkeypatch: pytest.MonkeyPatch) -> list[int | None]:
    """What each ``pg_copy.copy_query`` call returned: rows copied, or None where rows were fetched."""
    calls: list[int | None] = []
    real = pg_copy.copy_query

    def spy(*args, **kwargs):
        calls.append(real(*args, **kwargs))
        return calls[-1]

    monkeypatch.setattr(pg_copy, "copy_query", spy)
    return calls


def _tricky_events() -> pd.DataFrame:
    rows = []
    for n, text in enumerate(TRICKY_TEXT):
        ts = START + timedelta(minutes=n, microseconds=n * 1001)  # distinct, so ORDER BY is total
        rows.append((text or "empty", text, None if n % 3 else text, "view", ts, VALUES[n % len(VALUES)], text, None if n % 4 == 1 else text))
    rows.append(("e_before", "u", "i", "view", START - timedelta(microseconds=1), None, None, None))
    rows.append(("e_end", "u", "i", "view", END, None, None, None))
    frame = pd.DataFrame(rows, columns=list(EVENT_COLUMNS))
    frame["event_ts"] = pd.to_datetime(frame["event_ts"], utc=True)
    frame["value"] = frame["value"].astype("float64")
    return frame


def _tricky_items() -> pd.DataFrame:
    stamps = [START - timedelta(days=400, microseconds=7), None, START + timedelta(hours=23, microseconds=999999), END]
    rows = [(f"i{n}" if n else "007", TRICKY_TEXT[n], TRICKY_TEXT[-n - 1], stamps[n % 4]) for n in range(8)]
    frame = pd.DataFrame(rows, columns=list(ITEM_COLUMNS))
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
    return frame


def _both_ways(engine: sa.Engine, cfg: WarehouseConfig, out: Path, *, start=START, end=END) -> tuple[pa.Table, pa.Table]:
    """The events and items tables extracted by COPY, after checking they equal the fetched ones."""
    copied = extract_interval(engine, cfg, start=start, end=end, out_dir=out / "copy")
    fetched = extract_interval(
        engine.execution_options(**{pg_copy.COPY_OPTION: False}), cfg, start=start, end=end, out_dir=out / "fetch"
    )
    assert (copied.events, copied.items) == (fetched.events, fetched.items)
    tables = []
    for name in ("events", "items"):
        by_copy, by_fetch = (pq.ParquetFile(snap.path / f"{name}.parquet") for snap in (copied, fetched))
        assert by_copy.schema_arrow == by_fetch.schema_arrow
        assert by_copy.metadata.num_row_groups == by_fetch.metadata.num_row_groups
        table = by_copy.read()
        assert table.to_pylist() == by_fetch.read().to_pylist()
        assert table.equals(by_fetch.read())
        # events come grouped by user (sql/select_events.sql); the checks below read them in time order
        tables.append(table.sort_by("event_ts") if name == "events" else table)
    return tables[0], tables[1]


def test_tricky_text_floats_and_times_come_out_as_fetched(pg_engine, pg_schema, tmp_path, copy_calls):
    cfg = WarehouseConfig(source_schema=pg_schema)
    sources.load(pg_engine, _tricky_events(), _tricky_items(), warehouse=cfg)
    events, items = _both_ways(pg_engine, cfg, tmp_path)
    assert copy_calls == [len(TRICKY_TEXT), 6, None, None]  # items: created before END or undated

    expected = _tricky_events().iloc[: len(TRICKY_TEXT)]
    assert events.column("user_id").to_pylist() == TRICKY_TEXT  # "" stays "", byte for byte
    assert events.column("item_id").to_pylist() == [t if n % 3 == 0 else None for n, t in enumerate(TRICKY_TEXT)]
    assert events.column("event_ts").to_pylist() == expected["event_ts"].dt.to_pydatetime().tolist()
    values = events.column("value").to_pylist()
    assert values[:len(VALUES)] == VALUES and values[3] == 3.0 and values[1] == 0.1 and values[2] == 1 / 3
    assert items.column("created_at").null_count == 2


@pytest.mark.parametrize("value_type", ["float8", "numeric"])
def test_other_id_types_enums_and_special_floats(pg_database_url, pg_schema, tmp_path, copy_calls, value_type):
    s = f'"{pg_schema}"'
    # A session zone whose offsets have seconds before 1937 (+00:19:32): it must not reach the CSV.
    engine = create_engine(pg_database_url, connect_args={"options": "-c TimeZone=Europe/Amsterdam"})
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE TYPE {s}.kind AS ENUM ('view', 'purchase', 'odd, \"one\"')")
        conn.exec_driver_sql(
            f"CREATE TABLE {s}.events (event_id bigint, user_id uuid, item_id varchar(20), event_type {s}.kind, "
            f"event_ts timestamptz, value {value_type}, query char(6), session_id integer)"
        )
        conn.exec_driver_sql(f"CREATE TABLE {s}.items (item_id bigint, title text, category name, created_at timestamptz)")
        conn.exec_driver_sql(
            f"INSERT INTO {s}.events SELECT n, md5(n::text)::uuid, lpad(n::text, 3, '0'), "
            "(ARRAY['view', 'purchase', 'odd, \"one\"'])[mod(n, 3) + 1]::" + f"{s}.kind, "
            "'2026-03-01 05:30:00.000001+05:30'::timestamptz + n * interval '1 minute 0.25 second', "
            "(ARRAY['NaN', 'Infinity', '-Infinity', '-0', '1e-310', NULL, '0.1000000000000000055511151231257827'])"
            f"[mod(n, 7) + 1]::{value_type}, "
            "CASE WHEN mod(n, 2) = 0 THEN 'ab' END, -n FROM generate_series(1, 40) n"
        )
        conn.exec_driver_sql(f"INSERT INTO {s}.items VALUES (7, 'Lamp', 'home', NULL), (-1, NULL, '', '1900-01-01 12:00+00')")
    try:
        events, items = _both_ways(engine, WarehouseConfig(source_schema=pg_schema, chunk_rows=7), tmp_path)
    finally:
        engine.dispose()
    assert copy_calls == [40, 2, None, None]
    assert events.column("item_id").to_pylist()[:2] == ["001", "002"]
    assert events.column("event_type").to_pylist()[:2] == ["purchase", 'odd, "one"']
    assert events.column("query").to_pylist()[:2] == [None, "ab    "]  # char(6) keeps its padding
    values = events.column("value").to_pylist()
    assert values[:7] == [math.inf, -math.inf, -0.0, 1e-310, None, 0.1, None]  # NaN reads as NULL, as fetched
    assert events.column("event_ts")[0].as_py() == datetime(2026, 3, 1, 0, 1, 0, 250001, tzinfo=UTC)
    assert items.column("item_id").to_pylist() == ["7", "-1"]
    assert items.column("created_at").to_pylist() == [None, datetime(1900, 1, 1, 12, tzinfo=UTC)]


def test_naive_wall_times_are_read_in_their_zone_around_clock_changes(pg_database_url, pg_schema, tmp_path, copy_calls):
    s = f'"{pg_schema}"'
    # Berlin: 2026-03-29 02:30 does not exist (clocks go forward), 2026-10-25 02:30 happens twice.
    walls = ["2026-03-29 01:59:59.999999", "2026-03-29 02:30:00", "2026-03-29 03:00:00", "2026-10-25 02:30:00",
             "2026-10-25 03:30:00", "2026-06-01 12:00:00.5"]
    engine = create_engine(pg_database_url, connect_args={"options": "-c TimeZone=America/New_York"})
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                f"CREATE TABLE {s}.events (event_id text, user_id text, item_id text, event_type text, "
                "event_ts timestamp, value float8, query text, session_id text)"
            )
            conn.exec_driver_sql(f"CREATE TABLE {s}.items (item_id text, title text, category text, created_at timestamp)")
            conn.execute(sa.text(f"INSERT INTO {s}.events VALUES (:id, 'u', 'i', 'view', :ts, 1, NULL, NULL)"),
                         [{"id": f"e{n}", "ts": datetime.fromisoformat(w)} for n, w in enumerate(walls)])
            conn.exec_driver_sql(f"INSERT INTO {s}.items VALUES ('i', 'Lamp', 'home', '2026-03-29 02:30:00'), ('j', 'Pot', 'home', NULL)")
        cfg = RecsysConfig.from_mapping({"warehouse": {"source_schema": pg_schema, "naive_timestamps_are": "Europe/Berlin"}}).warehouse
        events, items = _both_ways(engine, cfg, tmp_path, start=datetime(2026, 3, 1, tzinfo=UTC), end=datetime(2026, 12, 1, tzinfo=UTC))
    finally:
        engine.dispose()
    assert copy_calls == [6, 2, None, None]
    assert [t.isoformat() for t in events.column("event_ts").to_pylist()] == [
        "2026-03-29T00:59:59.999999+00:00", "2026-03-29T01:00:00+00:00", "2026-03-29T01:00:00+00:00",
        "2026-06-01T10:00:00.500000+00:00", "2026-10-25T00:30:00+00:00", "2026-10-25T02:30:00+00:00",
    ]  # in wall-time order (the SQL orders the naive column)
    assert items.column("created_at").to_pylist()[0] == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)


def test_an_empty_interval_copies_empty_files(pg_engine, pg_schema, tmp_path, copy_calls):
    cfg = WarehouseConfig(source_schema=pg_schema)
    sources.load(pg_engine, _tricky_events(), _tricky_items(), warehouse=cfg)
    events, _ = _both_ways(pg_engine, cfg, tmp_path, start=END + timedelta(days=5), end=END + timedelta(days=6))
    assert copy_calls[0] == 0 and events.num_rows == 0 and events.schema == EVENTS_SCHEMA


def test_more_rows_than_a_chunk_give_one_row_group_per_chunk(pg_engine, pg_schema, tmp_path, copy_calls):
    cfg = WarehouseConfig(source_schema=pg_schema, chunk_rows=4)
    sources.load(pg_engine, _tricky_events(), _tricky_items(), warehouse=cfg)
    events, _ = _both_ways(pg_engine, cfg, tmp_path)
    assert copy_calls[0] == len(TRICKY_TEXT) == events.num_rows
    assert pq.ParquetFile(tmp_path / "copy" / "events.parquet").metadata.num_row_groups == math.ceil(len(TRICKY_TEXT) / 4)


def test_line_breaks_across_the_csv_parsers_blocks(pg_engine, pg_schema, tmp_path, copy_calls):
    # Arrow parses a chunk in blocks of 1 MiB; a quoted line break must not be taken for a block's end.
    cfg = WarehouseConfig(source_schema=pg_schema)
    sources.create_source_tables(pg_engine, warehouse=cfg)
    with pg_engine.begin() as conn:
        conn.exec_driver_sql(
            f"INSERT INTO \"{pg_schema}\".events SELECT 'e' || n, 'u', 'i', 'search', "
            "'2026-03-01'::timestamptz + n * interval '1 second', NULL, repeat(E'a \"line\",\\n', mod(n, 50)), NULL "
            "FROM generate_series(1, 20000) n"
        )
    events, _ = _both_ways(pg_engine, cfg, tmp_path)
    assert copy_calls[0] == 20_000 and events.column("query")[48].as_py() == 'a "line",\n' * 49


def test_a_type_outside_the_contract_is_fetched(pg_engine, pg_schema, tmp_path, copy_calls):
    s = f'"{pg_schema}"'
    with pg_engine.begin() as conn:
        conn.exec_driver_sql(
            f"CREATE TABLE {s}.events (event_id text, user_id text, item_id text, event_type text, "
            "event_ts timestamptz, value float8, query text, session_id boolean)"
        )
        conn.exec_driver_sql(f"CREATE TABLE {s}.items (item_id text, title text, category text, created_at timestamptz)")
        conn.exec_driver_sql(f"INSERT INTO {s}.events VALUES ('e', 'u', 'i', 'view', '2026-03-01 10:00+00', NULL, NULL, true)")
    events, _ = _both_ways(pg_engine, WarehouseConfig(source_schema=pg_schema), tmp_path)
    assert copy_calls == [None, 0, None, None]  # COPY would print 't' where a fetch gives 'True'
    assert events.column("session_id").to_pylist() == ["True"]


def test_parameters_are_rendered_as_literals(pg_engine):
    # COPY takes no bind parameters: values are rendered by psycopg, quoted, never pasted in.
    schema = pa.schema([("event_id", pa.string()), ("event_ts", pa.timestamp("us", tz="UTC"))])
    tables = []
    with pg_engine.connect() as conn:
        count = pg_copy.copy_query(
            conn, "SELECT :id AS event_id, :ts AS event_ts", {"id": "x'); DROP TABLE y; --%s", "ts": START},
            schema, tables.append, chunk_rows=10, label="events",
        )
    assert count == 1 and tables[0].to_pylist() == [{"event_id": "x'); DROP TABLE y; --%s", "event_ts": START}]


def test_a_value_arrow_cannot_read_names_the_column(pg_engine, pg_schema, tmp_path):
    cfg = WarehouseConfig(source_schema=pg_schema)
    sources.create_source_tables(pg_engine, warehouse=cfg)
    with pg_engine.begin() as conn:
        conn.exec_driver_sql(f"INSERT INTO \"{pg_schema}\".items VALUES ('i1', 'Lamp', 'home', '-infinity')")
    with pytest.raises(WarehouseError, match=r"items column 'created_at' cannot be read as timestamp\[us, tz=UTC\].*-infinity"):
        extract_interval(pg_engine, cfg, start=START, end=END, out_dir=tmp_path)


def test_a_statement_timeout_during_the_copy_says_so(pg_database_url, pg_schema, tmp_path):
    s = f'"{pg_schema}"'
    engine = create_engine(pg_database_url, statement_timeout_s=0.5)
    try:
        with engine.begin() as conn:  # a view whose rows take 0.2 s each: only reading them is slow
            conn.exec_driver_sql(f"CREATE FUNCTION {s}.slow(text) RETURNS text LANGUAGE sql AS 'SELECT pg_sleep(0.2)::text || $1'")
            conn.exec_driver_sql(
                f"CREATE VIEW {s}.events AS SELECT {s}.slow(n::text) AS event_id, 'u' AS user_id, 'i' AS item_id, "
                "'view' AS event_type, '2026-03-01 10:00+00'::timestamptz AS event_ts, NULL::float8 AS value, "
                "NULL::text AS query, NULL::text AS session_id FROM generate_series(1, 10) n"
            )
            conn.exec_driver_sql(f"CREATE TABLE {s}.items (item_id text, title text, category text, created_at timestamptz)")
        with pytest.raises(WarehouseError, match="gave up waiting.*statement timeout"):
            extract_interval(engine, WarehouseConfig(source_schema=pg_schema), start=START, end=END, out_dir=tmp_path)
        with engine.connect() as conn:  # the pooled connection is usable again
            assert conn.execute(sa.text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()
