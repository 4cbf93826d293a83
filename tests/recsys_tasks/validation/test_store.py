"""Validation's tables: volumes feed later runs' bands, and a rerun replaces a run's outcomes."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest
import sqlalchemy as sa

from recsys_tasks.data.warehouse import create_engine, ensure_output_schema
from recsys_tasks.validation import (
    EVENTS_SUITE,
    ExpectationOutcome,
    ValidationReport,
    clean_snapshot,
    previous_volumes,
    store_report,
)
from recsys_tasks.validation.outcomes import Severity

SCHEMA = "recsys"


@pytest.fixture
def engine(sqlite_url: str):
    engine = create_engine(sqlite_url, output_schema=SCHEMA)
    ensure_output_schema(engine, SCHEMA)
    yield engine
    engine.dispose()


def outcome(success: bool, key: str = "events.user_id_not_null") -> ExpectationOutcome:
    return ExpectationOutcome.judged(
        Severity(),
        suite=EVENTS_SUITE,
        key=key,
        expectation="expect_column_values_to_not_be_null",
        column="user_id",
        success=success,
        observed={"unexpected_count": 0 if success else 2},
        details="checked",
    )


def store(engine, run_id: str, day: date, volume: int, *results: ExpectationOutcome) -> None:
    store_report(engine, SCHEMA, ValidationReport(run_id, list(results)), as_of=day, interval_events=volume)


def test_previous_volumes_are_earlier_successful_runs_oldest_first(engine):
    store(engine, "a", date(2024, 1, 1), 100, outcome(True))
    store(engine, "b", date(2024, 1, 2), 200, outcome(True))
    store(engine, "b2", date(2024, 1, 2), 250, outcome(True))  # a rerun of the same date: the larger one
    store(engine, "c", date(2024, 1, 3), 999, outcome(False))  # failed: not a reference volume
    store(engine, "d", date(2024, 1, 4), 300, outcome(True))
    store(engine, "e", date(2024, 1, 5), 400, outcome(True))  # the run's own date: not earlier
    assert previous_volumes(engine, SCHEMA, as_of=date(2024, 1, 5), limit=10) == [100, 250, 300]
    assert previous_volumes(engine, SCHEMA, as_of=date(2024, 1, 5), limit=2) == [250, 300]
    assert previous_volumes(engine, SCHEMA, as_of=date(2024, 1, 1), limit=10) == []


def test_store_report_replaces_a_rerun_of_the_same_run(engine):
    store(engine, "r", date(2024, 1, 1), 10, outcome(False), outcome(True, "events.event_id_not_null"))
    store(engine, "r", date(2024, 1, 1), 12, outcome(True))
    with engine.connect() as conn:
        results = conn.execute(sa.text(f"SELECT run_id, success FROM {SCHEMA}.validation_results")).all()
        runs = conn.execute(
            sa.text(f"SELECT run_id, interval_events, success FROM {SCHEMA}.validation_runs")
        ).all()
    assert [(r.run_id, bool(r.success)) for r in results] == [("r", True)]
    assert [(r.run_id, r.interval_events, bool(r.success)) for r in runs] == [("r", 12, True)]


def test_judged_outcome_takes_its_severity_from_the_warning_list():
    warn_key = Severity(frozenset({"events.user_id_not_null"}))
    warn_name = Severity(frozenset({"expect_column_values_to_not_be_null"}))
    for severity, expected in ((Severity(), "blocking"), (warn_key, "warning"), (warn_name, "warning")):
        made = ExpectationOutcome.judged(
            severity, suite=EVENTS_SUITE, key="events.user_id_not_null",
            expectation="expect_column_values_to_not_be_null", column="user_id",
            success=False, observed=None, details="bad\x00byte",
        )
        assert made.severity == expected
        assert made.details == "bad\ufffdbyte"  # PostgreSQL text cannot hold NUL


def test_clean_snapshot_counts_each_frame_under_its_name():
    events = pd.DataFrame({"event_id": pd.array(["e1", "e1", "e2"], dtype="string"), "query": pd.array(["a ", "a", None], dtype="string")})
    items = pd.DataFrame({"item_id": pd.array([" i1", "i2"], dtype="string"), "title": pd.array([" T", "U"], dtype="string")})
    clean = clean_snapshot(events, items)
    assert clean.counts == {
        "events.exact_duplicates_dropped": 1,
        "events.values_trimmed": 1,
        "items.exact_duplicates_dropped": 0,
        "items.values_trimmed": 1,
    }
    assert clean.event_duplicates_dropped == 1
    assert list(clean.events["event_id"]) == ["e1", "e2"] and list(clean.items["item_id"]) == [" i1", "i2"]
