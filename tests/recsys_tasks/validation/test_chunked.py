"""Validation in chunks of whole users: the same outcomes as one pass over the whole frame."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recsys_tasks.config import ValidationConfig
from recsys_tasks.data.sequences import EVENT_COLUMNS
from recsys_tasks.data.snapshot import EVENTS_SCHEMA, ITEMS_SCHEMA, read_frame
from recsys_tasks.data.user_chunks import user_chunks
from recsys_tasks.validation import (
    ValidationReport,
    clean_and_validate,
    clean_events,
    interval_volume,
    validate_snapshot,
)

HISTORY_START = pd.Timestamp("2024-01-01", tz="UTC")
INTERVAL_START = pd.Timestamp("2024-01-10", tz="UTC")
INTERVAL_END = pd.Timestamp("2024-01-11", tz="UTC")
_TYPES = ("view", "click", "add_to_cart", "purchase", "search", "rate")
N_USERS = 7
WINDOW = {
    "interval_start": INTERVAL_START.to_pydatetime(),
    "interval_end": INTERVAL_END.to_pydatetime(),
    "history_start": HISTORY_START.to_pydatetime(),
    "run_id": "scheduled__2024-01-11",
}


def make_items(n: int = 10) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item_id": [f"i{k}" for k in range(n)],
            "title": [f"Item {k}" for k in range(n)],
            "category": ["books"] * n,
            "created_at": pd.to_datetime(["2023-06-01"] * n, utc=True),
        }
    )


def make_events(n_history: int = 30, n_interval: int = 60) -> pd.DataFrame:
    """Events of ``N_USERS`` users, in the order extraction writes them: by user, then time."""
    times = [HISTORY_START + pd.Timedelta(days=4, minutes=k) for k in range(n_history)] + [
        INTERVAL_START + pd.Timedelta(minutes=k) for k in range(n_interval)
    ]
    rows = []
    for k, ts in enumerate(times):
        kind = _TYPES[k % len(_TYPES)]
        rows.append(
            {
                "event_id": f"e{k:03d}",
                "user_id": f"u{k % N_USERS}",
                "item_id": None if kind == "search" else f"i{k % 10}",
                "event_type": kind,
                "event_ts": ts,
                "value": {"rate": float(1 + k % 5), "purchase": 19.99, "add_to_cart": 5.0}.get(kind),
                "query": " red shoes " if kind == "search" else None,
                "session_id": f"s{k % 3}",
            }
        )
    frame = pd.DataFrame(rows, columns=list(EVENT_COLUMNS)).astype({"value": "float64"})
    return by_user(frame)


def by_user(events: pd.DataFrame) -> pd.DataFrame:
    return events.sort_values(["user_id", "event_ts"], kind="stable", na_position="last", ignore_index=True)


def with_faults(events: pd.DataFrame) -> pd.DataFrame:
    """Some of every kind of bad row the row-level and window checks look for."""
    events = events.copy()
    u1 = events.index[events["user_id"] == "u1"]
    events.loc[u1[0], "event_type"] = "teleport"
    events.loc[u1[1], "event_ts"] = INTERVAL_END + pd.Timedelta(days=3)  # after the window
    events.loc[events.index[events["user_id"] == "u2"][:2], "item_id"] = "ghost"
    rating = events.index[(events["user_id"] == "u3") & (events["event_type"] == "rate")][0]
    events.loc[rating, "value"] = 99.0
    events.loc[events.index[events["user_id"] == "u4"], "user_id"] = " u4"  # padded
    nulls = events[events["user_id"] == "u5"].head(2).assign(user_id=None, event_id=["n1", "n2"])
    doubled = events[events["user_id"] == "u6"].head(3)  # a double load: exact duplicate rows
    return by_user(pd.concat([events, nulls, doubled], ignore_index=True))


def write_snapshot(path: Path, events: pd.DataFrame, items: pd.DataFrame | None = None) -> Path:
    path.mkdir(parents=True)
    items = make_items() if items is None else items
    for frame, schema, name in ((events, EVENTS_SCHEMA, "events"), (items, ITEMS_SCHEMA, "items")):
        pq.write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False), path / f"{name}.parquet")
    return path


def in_chunks(snapshot: Path, chunk_rows: int, volumes=(60,) * 7, **config):
    return clean_and_validate(
        snapshot,
        snapshot.parent / f"clean_{chunk_rows}.parquet",
        config=ValidationConfig(**config),
        chunk_rows=chunk_rows,
        previous_volumes=list(volumes),
        docs_dir=None,
        **WINDOW,
    )


def whole(snapshot: Path, volumes=(60,) * 7, **config) -> tuple[ValidationReport, pd.DataFrame, dict]:
    """The pre-chunking way: read it all, clean it, validate the frame."""
    events, counts = clean_events(read_frame(snapshot / "events.parquet"))
    report = validate_snapshot(
        events,
        make_items(),
        config=ValidationConfig(**config),
        previous_volumes=list(volumes),
        docs_dir=None,
        event_duplicates_dropped=counts["exact_duplicates_dropped"],
        **WINDOW,
    )
    return report, events, counts


def outcomes(report: ValidationReport) -> dict[str, tuple]:
    """Every outcome by key: verdict, severity, expectation, column, counts and examples, details."""
    return {
        r.key: (r.success, r.severity, r.expectation, r.column, r.observed_value, r.details) for r in report.results
    }


def failed(report: ValidationReport) -> dict[str, object]:
    return {r.key: r for r in report.results if not r.success}


def test_chunks_of_a_few_rows_report_what_the_whole_frame_reports(tmp_path):
    snapshot = write_snapshot(tmp_path / "snap", with_faults(make_events()))
    assert len(list(user_chunks(snapshot / "events.parquet", chunk_rows=4))) >= N_USERS  # really in chunks
    reference, events, counts = whole(snapshot, warning_expectations=("events.item_id_not_null",))
    small = in_chunks(snapshot, 4, warning_expectations=("events.item_id_not_null",))
    one = in_chunks(snapshot, 10_000, warning_expectations=("events.item_id_not_null",))

    # Every fault is found, with the counts a pass over the whole frame gives ...
    assert set(failed(reference)) == {
        "events.event_type_known",
        "events.event_ts_in_window",
        "events.rating_in_range",
        "events.items_in_catalogue",
        "events.user_id_not_null",
        "events.user_id_unpadded",
        "events.no_duplicate_rows",
    }
    assert failed(reference)["events.user_id_not_null"].observed_value["unexpected_count"] == 2
    assert failed(reference)["events.no_duplicate_rows"].observed_value["duplicate_rows_dropped"] == 3
    # ... and chunks of four rows or one chunk report exactly the same outcomes, examples included.
    assert outcomes(small.report) == outcomes(reference) == outcomes(one.report)
    assert [r.key for r in small.report.results] == [r.key for r in reference.results]
    expected_counts = {**{f"events.{k}": v for k, v in counts.items()}, "items.exact_duplicates_dropped": 0,
                       "items.values_trimmed": 0}
    assert small.cleaning_counts == one.cleaning_counts == expected_counts
    assert counts["values_trimmed"] > 0  # the search queries were trimmed
    interval = interval_volume(events, INTERVAL_START, INTERVAL_END)
    assert small.interval_events == one.interval_events == interval and small.events == len(events)


def test_an_event_id_repeated_in_two_users_chunks_is_reported(tmp_path):
    events = make_events()
    u0, u5 = events.index[events["user_id"] == "u0"][3], events.index[events["user_id"] == "u5"][2]
    events.loc[[u0, u5], "event_id"] = "twice"
    snapshot = write_snapshot(tmp_path / "snap", events)
    chunks = list(user_chunks(snapshot / "events.parquet", chunk_rows=5))
    assert [(c["event_id"] == "twice").sum() for c in chunks if (c["event_id"] == "twice").any()] == [1, 1]

    result = in_chunks(snapshot, 5)
    outcome = failed(result.report)["events.event_id_unique"]
    assert set(failed(result.report)) == {"events.event_id_unique"}
    assert outcome.expectation == "expect_column_values_to_be_unique" and outcome.column == "event_id"
    assert outcome.observed_value["unexpected_count"] == 2
    assert outcome.observed_value["examples"] == ["twice", "twice"]
    assert outcomes(result.report) == outcomes(whole(snapshot)[0])


def test_a_file_not_grouped_by_user_is_validated_whole(tmp_path, caplog):
    events = with_faults(make_events()).sample(frac=1.0, random_state=3, ignore_index=True)
    snapshot = write_snapshot(tmp_path / "snap", events)
    with caplog.at_level(logging.WARNING, logger="recsys_tasks.data.user_chunks"):
        result = in_chunks(snapshot, 4)
    assert "not grouped by user" in caplog.text
    assert outcomes(result.report) == outcomes(whole(snapshot)[0])
    assert "events.no_duplicate_rows" in failed(result.report)


def test_the_clean_file_holds_the_rows_of_cleaning_the_whole_frame(tmp_path):
    snapshot = write_snapshot(tmp_path / "snap", with_faults(make_events()))
    result = in_chunks(snapshot, 4)
    written = read_frame(tmp_path / "clean_4.parquet")
    _, expected, _ = whole(snapshot)
    pd.testing.assert_frame_equal(written, expected)
    assert result.events == len(written) and result.write_error is None


def test_an_empty_events_file_reports_what_an_empty_frame_reports(tmp_path):
    snapshot = write_snapshot(tmp_path / "snap", make_events().iloc[0:0])
    result = in_chunks(snapshot, 4)
    assert outcomes(result.report) == outcomes(whole(snapshot)[0])
    assert failed(result.report)["events.interval_volume_within_band"].observed_value == 0
    assert result.interval_events == 0 and len(read_frame(tmp_path / "clean_4.parquet")) == 0


@pytest.mark.parametrize("bounds", [{"purchase": (0.1, 0.3)}, {"purchase": (0.5, 1.0)}])
def test_type_shares_and_volume_are_judged_on_the_whole_interval(tmp_path, bounds):
    snapshot = write_snapshot(tmp_path / "snap", make_events())
    result = in_chunks(snapshot, 4, volumes=(600,) * 7, event_type_share_bounds=bounds)
    reference = whole(snapshot, volumes=(600,) * 7, event_type_share_bounds=bounds)[0]
    assert outcomes(result.report) == outcomes(reference)
    assert failed(result.report)["events.interval_volume_within_band"].observed_value == 60


def test_a_column_that_does_not_convert_is_reported_and_the_clean_file_not_written(tmp_path):
    events = make_events().astype({"value": "string"})
    events.loc[events["event_type"] == "purchase", "value"] = "n/a"  # text that is no number
    events.loc[events.index[:2], "event_id"] = "twice"  # and the ids are quoted from the extracted file
    snapshot = tmp_path / "snap"
    snapshot.mkdir()
    events.to_parquet(snapshot / "events.parquet", index=False)
    write_snapshot(tmp_path / "items_only", events.iloc[0:0])
    (tmp_path / "items_only" / "items.parquet").rename(snapshot / "items.parquet")

    result = in_chunks(snapshot, 4, warning_expectations=("events.value_dtype",))
    assert isinstance(result.write_error, (pa.ArrowException, ValueError, TypeError))
    assert [w.key for w in result.report.warnings] == ["events.value_dtype"]
    unique = failed(result.report)["events.event_id_unique"]
    assert unique.observed_value["examples"] == ["twice", "twice"]
