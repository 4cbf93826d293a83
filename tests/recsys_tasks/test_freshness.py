"""The freshness check: is the publication of the check's (UTC) date there by the deadline?"""

from __future__ import annotations

from datetime import date, datetime, time, timezone

import pytest
import sqlalchemy as sa

from recsys_tasks.freshness import Freshness, deadline_of, publication_status
from recsys_tasks.sqlfiles import statement

SIX = time(6, 0)


def _at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 2, day, hour, minute, tzinfo=timezone.utc)


def _publish(engine: sa.Engine, schema: str, as_of: str, published_at: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            statement("upsert_publication", schema=schema),
            {"as_of": as_of, "run_id": "scheduled__x", "model_version": "m7", "users": 93, "rows": 930, "top_k": 10,
             "published_at": published_at},
        )


def test_the_deadline_is_that_time_on_the_as_of_date_in_utc():
    assert deadline_of(date(2026, 2, 2), SIX) == _at(2, 6)
    assert deadline_of(date(2026, 2, 2), time(23, 45)) == _at(2, 23, 45)


def test_late_means_due_and_missing():
    missing_before = Freshness(as_of=date(2026, 2, 2), deadline=_at(2, 6), checked_at=_at(2, 5, 59))
    missing_at = Freshness(as_of=date(2026, 2, 2), deadline=_at(2, 6), checked_at=_at(2, 6))
    there = Freshness(as_of=date(2026, 2, 2), deadline=_at(2, 6), checked_at=_at(2, 9), published_at=_at(2, 7), model_version="m7")
    assert (missing_before.due, missing_before.late) == (False, False)
    assert (missing_at.due, missing_at.late) == (True, True)
    assert (there.due, there.late) == (True, False)
    assert "(after the deadline)" in there.summary()
    subject, body = missing_at.message()
    assert subject == "[recsys] Recommendations for 2026-02-02 not published by 06:00 UTC"
    assert "logical date 2026-02-01" in body  # the run to look at: the backfill dialog's date


def test_reads_the_publication_of_the_checks_date(output_db):
    engine, schema = output_db
    _publish(engine, schema, "2026-02-01", "2026-02-01 00:41:00.000000+00:00")
    # 2 Feb 06:15: yesterday's publication does not count.
    late = publication_status(engine, schema, checked_at=_at(2, 6, 15), deadline=SIX)
    assert (late.as_of, late.published, late.late) == (date(2026, 2, 2), False, True)
    _publish(engine, schema, "2026-02-02", "2026-02-02 06:40:00.000000+00:00")
    there = publication_status(engine, schema, checked_at=_at(2, 6, 45), deadline=SIX)
    assert (there.published, there.late) == (True, False)
    assert (there.published_at, there.model_version, there.users) == (_at(2, 6, 40), "m7", 93)
    assert there.to_dict()["published_at"].startswith("2026-02-02")


def test_an_output_schema_that_was_never_created_counts_as_not_published(sqlite_url):
    from recsys_tasks.data.warehouse import create_engine

    engine = create_engine(sqlite_url, output_schema="recsys")  # attached, but no tables yet
    try:
        status = publication_status(engine, "recsys", checked_at=_at(3, 7), deadline=SIX)
    finally:
        engine.dispose()
    assert (status.as_of, status.late) == (date(2026, 2, 3), True)


def test_the_deadline_setting_is_a_utc_time_of_day(monkeypatch):
    from recsys_tasks.config_types import ConfigError
    from recsys_tasks.settings import RecsysSettings

    monkeypatch.delenv("RECSYS_PUBLISH_DEADLINE", raising=False)
    assert RecsysSettings().publish_deadline == SIX
    monkeypatch.setenv("RECSYS_PUBLISH_DEADLINE", "07:30")
    assert RecsysSettings().publish_deadline == time(7, 30)
    for wrong in ("25:00", "06:00+02:00", "six"):
        monkeypatch.setenv("RECSYS_PUBLISH_DEADLINE", wrong)
        with pytest.raises(ConfigError, match="RECSYS_PUBLISH_DEADLINE"):
            RecsysSettings()
