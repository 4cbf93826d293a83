"""The warehouse: streaming extraction of exactly [start, end), clear errors, URLs, our output schema.

PostgreSQL tests put the user's source tables in the per-test schema (``WarehouseConfig(source_schema=pg_schema)``);
SQLite tests use a fresh warehouse file. The events are a handful of hand-made rows around the interval edges.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from recsys_tasks.config import WarehouseConfig
from recsys_tasks.data import sources, warehouse
from recsys_tasks.data.sequences import EVENT_COLUMNS, ITEM_COLUMNS
from recsys_tasks.data.snapshot import extract_interval, read_snapshot
from recsys_tasks.data.warehouse import WarehouseError, ensure_output_schema, url_from_connection

START = datetime(2026, 3, 1, tzinfo=UTC)
END = datetime(2026, 3, 2, tzinfo=UTC)
US = timedelta(microseconds=1)


def _events() -> pd.DataFrame:
    rows = [
        # event_id, user, item, type, ts, value, query, session
        ("e_before", "u1", "i1", "view", START - US, None, None, "s0"),
        ("e_start", "u1", "i1", "view", START, None, None, "s1"),
        ("e_mid1", "u1", "i2", "purchase", START + timedelta(hours=3), 19.5, None, "s1"),
        ("e_search", "u2", None, "search", START + timedelta(hours=5), None, "red shoes", "s2"),
        ("e_mid2", "u2", "i3", "rate", START + timedelta(hours=6), 4.0, None, None),
        ("e_last", "u2", "i1", "click", END - US, None, None, "s3"),
        ("e_end", "u3", "i2", "view", END, None, None, "s4"),
        ("e_after", "u3", "i3", "view", END + timedelta(days=1), None, None, "s5"),
    ]
    frame = pd.DataFrame(rows, columns=list(EVENT_COLUMNS))
    frame["event_ts"] = pd.to_datetime(frame["event_ts"], utc=True)
    frame["value"] = frame["value"].astype("float64")
    return frame


def _items() -> pd.DataFrame:
    rows = [
        ("i1", "Trail Shoes", "Running", START - timedelta(days=10)),
        ("i2", "Espresso Machine", "Coffee", START + timedelta(hours=1)),
        ("i3", "Dome Tent", "Camping", None),  # undated: always in the catalogue
        ("i4", "Future Item", "Camping", END),  # created at the end: not yet in the catalogue
    ]
    frame = pd.DataFrame(rows, columns=list(ITEM_COLUMNS))
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
    return frame


#: What [START, END) holds, in time order.
INSIDE = ["e_start", "e_mid1", "e_search", "e_mid2", "e_last"]


def _check_snapshot(snapshot: warehouse.Snapshot) -> None:
    assert (snapshot.events, snapshot.items) == (5, 3)
    events, items = read_snapshot(snapshot.path)
    assert tuple(events.columns) == EVENT_COLUMNS
    assert events["event_id"].tolist() == INSIDE
    expected = _events().set_index("event_id").loc[INSIDE]
    assert events["event_ts"].tolist() == expected["event_ts"].tolist()
    assert str(events["event_ts"].dt.tz) == "UTC"
    row = events.set_index("event_id")
    assert row.loc["e_mid1", "value"] == 19.5 and row.loc["e_mid2", "value"] == 4.0
    assert pd.isna(row.loc["e_start", "value"])
    assert row.loc["e_search", "query"] == "red shoes" and pd.isna(row.loc["e_search", "item_id"])
    assert pd.isna(row.loc["e_mid2", "session_id"])
    assert sorted(items["item_id"].tolist()) == ["i1", "i2", "i3"]
    assert items.set_index("item_id").loc["i2", "title"] == "Espresso Machine"


# ------------------------------------------------------------------------------------ PostgreSQL


@pytest.mark.parametrize("chunk_rows", [50_000, 3])
def test_extract_reads_exactly_the_interval_on_postgres(pg_engine, pg_schema, tmp_path, chunk_rows):
    cfg = WarehouseConfig(source_schema=pg_schema, chunk_rows=chunk_rows)
    sources.load(pg_engine, _events(), _items(), warehouse=cfg)
    snapshot = extract_interval(pg_engine, cfg, start=START, end=END, out_dir=tmp_path / "snap")
    _check_snapshot(snapshot)
    # Rerunning overwrites the same files with the same content and leaves no partial file.
    again = extract_interval(pg_engine, cfg, start=START, end=END, out_dir=tmp_path / "snap")
    assert (again.events, again.items) == (5, 3)
    assert sorted(p.name for p in (tmp_path / "snap").iterdir()) == ["events.parquet", "items.parquet"]


def test_extract_of_an_empty_interval_writes_empty_files(pg_engine, pg_schema, tmp_path):
    cfg = WarehouseConfig(source_schema=pg_schema)
    sources.load(pg_engine, _events(), _items(), warehouse=cfg)
    snapshot = extract_interval(pg_engine, cfg, start=END + timedelta(days=5), end=END + timedelta(days=6), out_dir=tmp_path)
    events, _ = read_snapshot(snapshot.path)
    assert snapshot.events == 0 and len(events) == 0 and tuple(events.columns) == EVENT_COLUMNS


def test_extract_through_a_column_mapping(pg_engine, pg_schema, tmp_path):
    cfg = WarehouseConfig(
        source_schema=pg_schema,
        events_table="clickstream",
        items_table="products",
        event_columns={"event_id": "id", "user_id": "customer", "item_id": "sku", "event_ts": "happened_at", "event_type": "kind"},
        item_columns={"item_id": "sku", "title": "name", "created_at": "listed_at"},
        chunk_rows=2,
    )
    sources.load(pg_engine, _events(), _items(), warehouse=cfg)
    inspector = sa.inspect(pg_engine)
    # The warehouse really has the user's names, not ours.
    assert {c["name"] for c in inspector.get_columns("clickstream", schema=pg_schema)} == {
        "id", "customer", "sku", "kind", "happened_at", "value", "query", "session_id"
    }
    assert not inspector.has_table("events", schema=pg_schema)
    snapshot = extract_interval(pg_engine, cfg, start=START, end=END, out_dir=tmp_path / "snap")
    _check_snapshot(snapshot)


def _engine_with_password(url: str) -> sa.Engine:
    # Trust auth ignores the password; it is there to check that messages hide it.
    return sa.create_engine(sa.engine.make_url(url).set(password="s3cret-pw"))


def test_missing_table_names_table_and_connection_without_password(pg_database_url, pg_engine, pg_schema, tmp_path):
    cfg = WarehouseConfig(source_schema=pg_schema)
    sources.create_source_tables(pg_engine, warehouse=cfg)
    engine = _engine_with_password(pg_database_url)
    try:
        with pytest.raises(WarehouseError) as err:
            extract_interval(engine, WarehouseConfig(source_schema=pg_schema, events_table="no_such_events"),
                             start=START, end=END, out_dir=tmp_path)
    finally:
        engine.dispose()
    message = str(err.value)
    assert f"{pg_schema}.no_such_events does not exist" in message
    assert "postgresql+psycopg://postgres:***@127.0.0.1:5432/" in message
    assert "s3cret-pw" not in message
    assert not (tmp_path / "events.parquet").exists()


def test_missing_column_names_table_column_and_connection(pg_database_url, pg_engine, pg_schema, tmp_path):
    cfg = WarehouseConfig(source_schema=pg_schema)
    sources.create_source_tables(pg_engine, warehouse=cfg)
    with pg_engine.begin() as conn:
        conn.execute(sa.text(f'ALTER TABLE "{pg_schema}".events DROP COLUMN session_id'))
    engine = _engine_with_password(pg_database_url)
    try:
        with pytest.raises(WarehouseError) as err:
            extract_interval(engine, cfg, start=START, end=END, out_dir=tmp_path)
    finally:
        engine.dispose()
    message = str(err.value)
    assert f"table {pg_schema}.events" in message
    assert "session_id (for session_id)" in message
    assert "s3cret-pw" not in message and "127.0.0.1" in message
    # A mapped name the table lacks is named with the canonical field it was meant for.
    with pg_engine.begin() as conn:
        conn.execute(sa.text(f'ALTER TABLE "{pg_schema}".events ADD COLUMN session_id TEXT'))
    with pytest.raises(WarehouseError, match=r"items in .* lacks column\(s\) label \(for title\)"):
        extract_interval(pg_engine, WarehouseConfig(source_schema=pg_schema, item_columns={"title": "label"}),
                         start=START, end=END, out_dir=tmp_path)


def _create_events_table_by_hand(engine: sa.Engine, schema: str, *, event_ts_type: str, value_type: str) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(
            f'CREATE TABLE "{schema}".events (event_id TEXT, user_id TEXT, item_id TEXT, event_type TEXT, '
            f"event_ts {event_ts_type}, value {value_type}, query TEXT, session_id TEXT)"
        ))
        conn.execute(sa.text(
            f'CREATE TABLE "{schema}".items (item_id TEXT, title TEXT, category TEXT, created_at TIMESTAMPTZ)'
        ))


def test_event_ts_stored_as_text_raises_a_clear_error(pg_engine, pg_schema, tmp_path):
    _create_events_table_by_hand(pg_engine, pg_schema, event_ts_type="TEXT", value_type="DOUBLE PRECISION")
    with pg_engine.begin() as conn:
        conn.execute(sa.text(
            f"INSERT INTO \"{pg_schema}\".events VALUES ('e1', 'u1', 'i1', 'view', '2026-03-01 10:00:00+00', NULL, NULL, NULL)"
        ))
    with pytest.raises(WarehouseError) as err:
        extract_interval(pg_engine, WarehouseConfig(source_schema=pg_schema), start=START, end=END, out_dir=tmp_path)
    message = str(err.value)
    assert message.startswith("reading events from postgresql+psycopg://")
    assert "operator does not exist: text >= timestamp with time zone" in message
    assert "contract's types" in message
    assert not list(tmp_path.glob("*.parquet*"))  # no partial file left behind


def test_value_that_is_not_a_number_names_the_column(pg_engine, pg_schema, tmp_path):
    _create_events_table_by_hand(pg_engine, pg_schema, event_ts_type="TIMESTAMPTZ", value_type="TEXT")
    with pg_engine.begin() as conn:
        conn.execute(sa.text(
            f"INSERT INTO \"{pg_schema}\".events VALUES ('e1', 'u1', 'i1', 'purchase', '2026-03-01 10:00:00+00', "
            "'twelve dollars', NULL, NULL)"
        ))
    with pytest.raises(WarehouseError, match=r"events column 'value' cannot be read as double .*'twelve dollars'"):
        extract_interval(pg_engine, WarehouseConfig(source_schema=pg_schema), start=START, end=END, out_dir=tmp_path)


# ---------------------------------------------------------------------------------------- SQLite


@pytest.mark.parametrize("chunk_rows", [50_000, 3])
def test_extract_reads_exactly_the_interval_on_sqlite(sqlite_url, tmp_path, chunk_rows):
    engine = warehouse.create_engine(sqlite_url)
    try:
        cfg = WarehouseConfig(chunk_rows=chunk_rows)
        sources.load(engine, _events(), _items(), warehouse=cfg)
        _check_snapshot(extract_interval(engine, cfg, start=START, end=END, out_dir=tmp_path / "snap"))
        # The same instants written in another time zone (SQLite compares text: they must be UTC-normalised).
        plus2 = timezone(timedelta(hours=2))
        snapshot = extract_interval(
            engine, cfg, start=START.astimezone(plus2), end=END.astimezone(plus2), out_dir=tmp_path / "tz"
        )
        _check_snapshot(snapshot)
    finally:
        engine.dispose()


def test_missing_table_on_sqlite(sqlite_url, tmp_path):
    engine = warehouse.create_engine(sqlite_url)
    try:
        with pytest.raises(WarehouseError) as err:
            extract_interval(engine, WarehouseConfig(), start=START, end=END, out_dir=tmp_path)
    finally:
        engine.dispose()
    assert "table events does not exist in the warehouse sqlite:///" in str(err.value)


# ------------------------------------------------------------------------------------------- URLs


def test_url_from_postgres_connection_escapes_the_password():
    url = url_from_connection(conn_type="postgres", host="db.example", login="etl", password="p@ss:w/rd", port=6543, schema="shop")
    assert url == "postgresql+psycopg://etl:p%40ss%3Aw%2Frd@db.example:6543/shop"
    assert sa.engine.make_url(url).password == "p@ss:w/rd"
    assert url_from_connection(conn_type="PostgreSQL", host="h") == "postgresql+psycopg://h"


def test_url_from_sqlite_connection_uses_the_host_as_path():
    assert url_from_connection(conn_type="sqlite", host="/data/shop.db") == "sqlite:////data/shop.db"


def test_extra_sqlalchemy_url_wins():
    extra = {"sqlalchemy_url": "mysql+pymysql://u:p@h/db"}
    assert url_from_connection(conn_type="postgres", host="ignored", extra=extra) == "mysql+pymysql://u:p@h/db"
    assert url_from_connection(conn_type="snowflake", extra=extra) == "mysql+pymysql://u:p@h/db"


def test_unsupported_connection_type_says_what_to_do():
    with pytest.raises(WarehouseError, match=r"'snowflake' is not supported directly; set extra .*sqlalchemy_url"):
        url_from_connection(conn_type="snowflake", host="acct")


def test_libpq_extras_join_a_postgres_url_without_replacing_its_own():
    extra = {"sslmode": "verify-full", "sslrootcert": "/etc/ca.pem", "keepalives": True, "target_session_attrs": "read-write",
             "iam": True, "sqlalchemy_scheme": "postgresql+psycopg2", "cursor": "dictcursor", "application_name": ""}
    url = sa.engine.make_url(warehouse.with_libpq_extras("postgresql+psycopg://u:p%40w@h/db?sslmode=require", extra))
    # Only libpq parameters travel; the URL's own sslmode stays; JSON true is libpq's 1; empty values are dropped.
    assert dict(url.query) == {"sslmode": "require", "sslrootcert": "/etc/ca.pem", "keepalives": "1", "target_session_attrs": "read-write"}
    assert url.password == "p@w" and url.drivername == "postgresql+psycopg"
    assert warehouse.with_libpq_extras("sqlite:///shop.db", {"sslmode": "require"}) == "sqlite:///shop.db"


def test_connection_url_prefers_an_explicit_url_then_the_hook_then_the_fields():
    from types import SimpleNamespace

    def conn(**extra):
        return SimpleNamespace(conn_type="postgres", host="h", login="u", password="p", port=None, schema="db", extra_dejson=extra)

    hook_url = sa.URL.create("postgresql+psycopg2", username="u", password="iam-token", host="h", database="db")
    assert warehouse.connection_url(conn(sslmode="disable"), hook_url=hook_url) == "postgresql+psycopg2://u:iam-token@h/db?sslmode=disable"
    assert warehouse.connection_url(conn(sslmode="disable")) == "postgresql+psycopg://u:p@h/db?sslmode=disable"
    assert warehouse.connection_url(conn(sqlalchemy_url="sqlite:///x.db", sslmode="disable"), hook_url=hook_url) == "sqlite:///x.db"


@pytest.mark.parametrize("url", ["mysql+pymysql://u:secret@h/db", "snowflake://acct", "not a url"])
def test_an_output_that_is_not_postgres_or_sqlite_is_refused_naming_what_is(url):
    with pytest.raises(WarehouseError, match="PostgreSQL or SQLite") as err:
        warehouse.check_output_url(url)
    assert "secret" not in str(err.value)
    for ok in ("postgresql+psycopg://h/db", "postgresql+psycopg2://h/db", "sqlite:///shop.db"):
        warehouse.check_output_url(ok)


def test_a_source_only_sqlite_engine_attaches_no_output_file(tmp_path):
    engine = warehouse.create_engine(f"sqlite:///{tmp_path / 'shop.db'}", output_schema=None)
    try:
        with engine.connect() as conn:
            assert [row[1] for row in conn.exec_driver_sql("PRAGMA database_list")] == ["main"]
    finally:
        engine.dispose()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shop.db"]


# --------------------------------------------------------------------------------- output schema

OUTPUT_TABLES = {"model_registry", "evaluations", "validation_runs", "validation_results", "publications", "recommendations"}


def test_ensure_output_schema_twice_on_postgres_keeps_rows(pg_engine, pg_schema):
    ensure_output_schema(pg_engine, pg_schema)
    with pg_engine.begin() as conn:
        conn.execute(sa.text(
            f"INSERT INTO \"{pg_schema}\".publications (as_of, run_id, model_version, users, rows, top_k) "
            "VALUES ('2026-03-01', 'r1', 'm1', 1, 2, 2)"
        ))
    ensure_output_schema(pg_engine, pg_schema)
    inspector = sa.inspect(pg_engine)
    assert OUTPUT_TABLES <= set(inspector.get_table_names(schema=pg_schema))
    assert {"latest_recommendations", "champion"} <= set(inspector.get_view_names(schema=pg_schema))
    with pg_engine.connect() as conn:
        assert conn.execute(sa.text(f'SELECT count(*) FROM "{pg_schema}".publications')).scalar() == 1


def test_ensure_output_schema_creates_a_missing_schema(pg_engine):
    name = "t_new_out_schema"
    with pg_engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
    try:
        ensure_output_schema(pg_engine, name)
        ensure_output_schema(pg_engine, name)
        assert OUTPUT_TABLES <= set(sa.inspect(pg_engine).get_table_names(schema=name))
    finally:
        with pg_engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))


def test_ensure_output_schema_twice_on_sqlite_uses_its_own_file(sqlite_url, tmp_path):
    engine = warehouse.create_engine(sqlite_url, output_schema="recsys")
    try:
        ensure_output_schema(engine, "recsys")
        with engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO recsys.publications (as_of, run_id, model_version, users, rows, top_k) "
                "VALUES ('2026-03-01', 'r1', 'm1', 1, 2, 2)"
            ))
        ensure_output_schema(engine, "recsys")
        inspector = sa.inspect(engine)
        assert OUTPUT_TABLES <= set(inspector.get_table_names(schema="recsys"))
        assert inspector.get_table_names() == []  # the user's warehouse file is untouched
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM recsys.publications")).scalar() == 1
    finally:
        engine.dispose()
    assert Path(tmp_path / "warehouse.recsys.db").is_file()
