"""A `timestamp without time zone` source column under a non-UTC database session.

PostgreSQL compares such a column with a timestamptz bound in the session's time zone, so under
America/New_York a run's interval silently moved by five hours. It is now refused with the fix, or
read exactly as the wall times of the zone `warehouse.naive_timestamps_are` names.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from recsys_tasks.config import RecsysConfig
from recsys_tasks.data.snapshot import extract_interval, read_snapshot
from recsys_tasks.data.warehouse import WarehouseError, create_engine

START, END = datetime(2026, 2, 1, tzinfo=timezone.utc), datetime(2026, 2, 2, tzinfo=timezone.utc)
# Wall times as written by a loader; which instants they are depends on the zone they were written in.
WALL_TIMES = ["2026-01-31 23:30:00", "2026-02-01 00:30:00", "2026-02-01 22:30:00", "2026-02-02 00:30:00"]


@pytest.fixture
def naive_source(pg_engine: sa.Engine, pg_schema: str) -> str:
    with pg_engine.begin() as conn:
        conn.exec_driver_sql(
            f'CREATE TABLE "{pg_schema}".events (event_id text, user_id text, item_id text, event_type text, '
            "event_ts timestamp without time zone, value double precision, query text, session_id text)"
        )
        conn.exec_driver_sql(
            f'CREATE TABLE "{pg_schema}".items (item_id text, title text, category text, created_at timestamptz)'
        )
        conn.execute(
            sa.text(f'INSERT INTO "{pg_schema}".events VALUES (:id, \'u1\', \'i1\', \'view\', :ts, NULL, NULL, \'s\')'),
            [{"id": f"e{n}", "ts": ts} for n, ts in enumerate(WALL_TIMES)],
        )
        conn.exec_driver_sql(f"INSERT INTO \"{pg_schema}\".items VALUES ('i1', 'Lamp', 'home', '2026-01-01')")
    return pg_schema


def _extract(url: str, schema: str, tmp_path: Path, **warehouse) -> pd.DataFrame:
    cfg = RecsysConfig.from_mapping({"warehouse": {"source_schema": schema, **warehouse}}).warehouse
    # The database session runs in New York time, as a server's default or a role's setting might.
    engine = create_engine(url, connect_args={"options": "-c TimeZone=America/New_York"})
    try:
        snap = extract_interval(engine, cfg, start=START, end=END, out_dir=tmp_path / "snap")
    finally:
        engine.dispose()
    events, _ = read_snapshot(snap.path)
    return events.sort_values("event_id")


def test_a_naive_column_is_refused_with_the_fix(pg_database_url: str, naive_source: str, tmp_path: Path) -> None:
    with pytest.raises(WarehouseError, match="timestamp without time zone") as info:
        _extract(pg_database_url, naive_source, tmp_path)
    assert "warehouse.naive_timestamps_are" in str(info.value) and "event_ts" in str(info.value)


def test_naive_utc_wall_times_give_exactly_the_interval(pg_database_url: str, naive_source: str, tmp_path: Path) -> None:
    events = _extract(pg_database_url, naive_source, tmp_path, naive_timestamps_are="UTC")
    assert list(events["event_id"]) == ["e1", "e2"]  # 00:30 and 22:30 UTC on Feb 1, whatever the session zone
    assert list(events["event_ts"]) == [pd.Timestamp("2026-02-01 00:30", tz="UTC"), pd.Timestamp("2026-02-01 22:30", tz="UTC")]


def test_naive_wall_times_of_another_zone_are_converted(pg_database_url: str, naive_source: str, tmp_path: Path) -> None:
    # Written in Berlin (UTC+1 in winter): 2026-02-02 00:30 there is 2026-02-01 23:30 UTC, inside the
    # interval; 2026-02-01 00:30 there is 2026-01-31 23:30 UTC, before it.
    events = _extract(pg_database_url, naive_source, tmp_path, naive_timestamps_are="Europe/Berlin")
    assert list(events["event_id"]) == ["e2", "e3"]
    assert list(events["event_ts"]) == [pd.Timestamp("2026-02-01 21:30", tz="UTC"), pd.Timestamp("2026-02-01 23:30", tz="UTC")]
