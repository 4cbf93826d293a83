"""The one time module: every instant aware UTC, whatever type it arrives as."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pandas as pd
import pendulum
import pytest

from recsys_tasks.timeutil import as_date, day_start, iso, iso_column, utc


@pytest.mark.parametrize(
    "value",
    [
        pendulum.datetime(2026, 2, 1, 1, tz="Europe/Berlin"),  # what Airflow hands a task
        pd.Timestamp("2026-02-01 00:00", tz="UTC"),
        datetime(2026, 2, 1),  # naive: taken as UTC
        datetime(2026, 1, 31, 19, tzinfo=timezone(timedelta(hours=-5))),
        "2026-02-01 00:00:00.000000+00:00",
        "2026-02-01T00:00:00Z",
        date(2026, 2, 1),
    ],
)
def test_utc_gives_a_plain_aware_datetime(value) -> None:
    out = utc(value)
    assert type(out) is datetime and out.tzinfo is timezone.utc
    assert out == datetime(2026, 2, 1, tzinfo=timezone.utc)
    # Comparable with pandas' tz-aware values (pendulum's own class is not, in pandas 3).
    assert bool(pd.Series(pd.to_datetime(["2026-02-01"], utc=True)).ge(out).all())


def test_stored_text_round_trips() -> None:
    moment = datetime(2026, 2, 1, 12, 30, tzinfo=timezone.utc)
    assert iso(moment) == "2026-02-01 12:30:00.000000+00:00" and utc(iso(moment)) == moment
    assert iso(date(2026, 2, 1)) == "2026-02-01" and as_date("2026-02-01 12:30:00+00:00") == date(2026, 2, 1)
    assert day_start(date(2026, 2, 1)) == datetime(2026, 2, 1, tzinfo=timezone.utc)
    column = iso_column(pd.Series([pd.Timestamp("2026-02-01 12:30", tz="UTC"), pd.NaT]))
    assert list(column) == ["2026-02-01 12:30:00.000000+00:00", None]


def test_not_a_timestamp_is_named() -> None:
    with pytest.raises(ValueError, match="not an ISO date or timestamp"):
        utc("yesterday")
