"""Validation of one snapshot: each fault the nightly run must stop on, named in the report."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from recsys_tasks.config import ValidationConfig
from recsys_tasks.data.sequences import EVENT_COLUMNS, ITEM_COLUMNS
from recsys_tasks.validation import (
    EVENT_DTYPES,
    ITEM_DTYPES,
    DataValidationError,
    ValidationReport,
    clean_events,
    clean_items,
    raise_for_blocking,
    validate_snapshot,
)

HISTORY_START = pd.Timestamp("2024-01-01", tz="UTC")
INTERVAL_START = pd.Timestamp("2024-01-10", tz="UTC")
INTERVAL_END = pd.Timestamp("2024-01-11", tz="UTC")
N_ITEMS = 10
N_HISTORY = 10
N_INTERVAL = 20
# one of each type per cycle of six: value set where the contract says so
_TYPES = ("view", "click", "add_to_cart", "purchase", "search", "rate")


def make_items(n: int = N_ITEMS) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item_id": [f"i{k}" for k in range(n)],
            "title": [f"Item {k}" for k in range(n)],
            "category": ["books" if k % 2 else "games" for k in range(n)],
            "created_at": pd.to_datetime(["2023-06-01"] * n, utc=True),
        }
    )


def make_events(n_history: int = N_HISTORY, n_interval: int = N_INTERVAL, *, id_prefix: str = "e"):
    """``n_history`` events on 2024-01-05 and ``n_interval`` inside the interval (2024-01-10)."""
    rows = []
    times = [HISTORY_START + pd.Timedelta(days=4, minutes=k) for k in range(n_history)] + [
        INTERVAL_START + pd.Timedelta(minutes=k) for k in range(n_interval)
    ]
    for k, ts in enumerate(times):
        kind = _TYPES[k % len(_TYPES)]
        value = {"rate": float(1 + k % 5), "purchase": 19.99, "add_to_cart": 5.0}.get(kind)
        rows.append(
            {
                "event_id": f"{id_prefix}{k}",
                "user_id": f"u{k % 4}",
                "item_id": None if kind == "search" else f"i{k % N_ITEMS}",
                "event_type": kind,
                "event_ts": ts,
                "value": value,
                "query": "red shoes" if kind == "search" else None,
                "session_id": f"s{k % 3}",
            }
        )
    frame = pd.DataFrame(rows, columns=list(EVENT_COLUMNS))
    frame["value"] = frame["value"].astype("float64")
    return frame


def validate(
    events: pd.DataFrame,
    items: pd.DataFrame | None = None,
    *,
    previous_volumes=(N_INTERVAL,) * 7,
    docs_dir: Path | None = None,
    **config,
) -> ValidationReport:
    return validate_snapshot(
        events,
        make_items() if items is None else items,
        interval_start=INTERVAL_START.to_pydatetime(),
        interval_end=INTERVAL_END.to_pydatetime(),
        history_start=HISTORY_START.to_pydatetime(),
        config=ValidationConfig(**config),
        previous_volumes=list(previous_volumes),
        docs_dir=docs_dir,
        run_id="scheduled__2024-01-11",
    )


def failed(report: ValidationReport) -> dict[str, object]:
    """Failed checks by key -> outcome."""
    return {r.key: r for r in report.results if not r.success}


def test_every_canonical_column_has_a_dtype_check():
    assert tuple(EVENT_DTYPES) == EVENT_COLUMNS and tuple(ITEM_DTYPES) == ITEM_COLUMNS


def test_clean_snapshot_passes_without_warnings():
    report = validate(make_events())
    assert report.success, report.summary()
    assert report.warnings == [] and report.blocking_failures == []
    keys = {r.key for r in report.results}
    for key in (
        "events.user_id_not_null",
        "events.event_type_known",
        "events.event_ts_in_window",
        "events.event_id_unique",
        "events.rating_in_range",
        "events.price_in_range",
        "events.interval_volume_within_band",
        "events.items_in_catalogue",
        "items.item_id_unique",
        "items.title_not_null",
        "events.event_ts_dtype",
        "items.created_at_present",
    ):
        assert key in keys
    assert "passed" in report.summary()


def test_null_user_ids_block():
    events = make_events()
    events.loc[[3, 15], "user_id"] = None
    report = validate(events)
    assert not report.success
    outcome = failed(report)["events.user_id_not_null"]
    assert outcome.expectation == "expect_column_values_to_not_be_null"
    assert outcome.column == "user_id" and outcome.severity == "blocking"
    assert outcome.observed_value["unexpected_count"] == 2
    assert set(failed(report)) == {"events.user_id_not_null"}


def test_null_item_id_allowed_only_for_search():
    events = make_events()
    assert events["item_id"].isna().any()  # search events already have none and pass
    assert validate(events).success
    events.loc[events["event_type"] == "view", "item_id"] = None
    assert "events.item_id_not_null" in failed(validate(events))


def test_unknown_event_type_blocks():
    events = make_events()
    events.loc[12, "event_type"] = "wishlist"
    outcome = failed(validate(events))["events.event_type_known"]
    assert outcome.column == "event_type"
    assert outcome.observed_value["examples"] == ["wishlist"]


def test_future_timestamps_block():
    events = make_events()
    events.loc[len(events) - 1, "event_ts"] = INTERVAL_END + pd.Timedelta(days=30)
    outcome = failed(validate(events))["events.event_ts_in_window"]
    assert outcome.observed_value["unexpected_count"] == 1
    assert outcome.observed_value["examples"] == ["2024-02-10T00:00:00+00:00"]


def test_events_before_history_start_block():
    events = make_events()
    events.loc[0, "event_ts"] = HISTORY_START - pd.Timedelta(seconds=1)
    assert "events.event_ts_in_window" in failed(validate(events))


def test_double_loaded_day_duplicates_event_ids():
    events = make_events()
    interval = events[events["event_ts"] >= INTERVAL_START]
    doubled = pd.concat([events, interval.assign(session_id="reloaded")], ignore_index=True)
    failures = failed(validate(doubled))
    assert failures["events.event_id_unique"].observed_value["unexpected_count"] == 2 * N_INTERVAL
    # twice the usual rows is outside the default ±50% band as well
    assert failures["events.interval_volume_within_band"].observed_value == 2 * N_INTERVAL


def test_exact_duplicate_rows_dropped_by_cleaning_still_block_unless_warned():
    # A byte-for-byte double load: cleaning removes the copies, so event_id_unique cannot see them.
    doubled = pd.concat([make_events(), make_events().tail(N_INTERVAL)], ignore_index=True)
    events, counts = clean_events(doubled)
    assert counts["exact_duplicates_dropped"] == N_INTERVAL

    def run(**config):
        return validate_snapshot(
            events, make_items(), interval_start=INTERVAL_START.to_pydatetime(),
            interval_end=INTERVAL_END.to_pydatetime(), history_start=HISTORY_START.to_pydatetime(),
            config=ValidationConfig(**config), previous_volumes=[N_INTERVAL] * 7, docs_dir=None,
            run_id="scheduled__2024-01-11", event_duplicates_dropped=counts["exact_duplicates_dropped"],
        )

    outcome = failed(run())["events.no_duplicate_rows"]
    assert set(failed(run())) == {"events.no_duplicate_rows"}
    assert outcome.column == "event_id" and outcome.expectation == "expect_no_duplicate_event_rows"
    rows = N_HISTORY + 2 * N_INTERVAL
    assert outcome.observed_value == {"duplicate_rows_dropped": N_INTERVAL, "rows_extracted": rows}
    warned = run(warning_expectations=("events.no_duplicate_rows",))
    assert warned.success and [w.key for w in warned.warnings] == ["events.no_duplicate_rows"]
    assert validate(events).success  # nothing dropped reported: the de-duplicated frame itself is fine


@pytest.mark.parametrize(
    ("event_type", "value", "key"),
    [
        ("purchase", -19.99, "events.price_in_range"),
        ("add_to_cart", 5e9, "events.price_in_range"),
        ("rate", 7.0, "events.rating_in_range"),
        ("rate", 0.0, "events.rating_in_range"),
    ],
)
def test_negative_or_absurd_values_block(event_type, value, key):
    events = make_events()
    row = events.index[events["event_type"] == event_type][0]
    events.loc[row, "value"] = value
    failures = failed(validate(events))
    assert set(failures) == {key}
    assert failures[key].column == "value"
    assert failures[key].observed_value["examples"] == [value]


def test_unknown_items_above_tolerance_block_and_below_pass():
    events = make_events()
    item_rows = events.index[events["item_id"].notna()]  # 25 item events of 30
    assert len(item_rows) == 25
    events.loc[item_rows[:3], "item_id"] = "ghost"  # 3/25 = 12% unknown
    outcome = failed(validate(events, max_unknown_item_share=0.1))["events.items_in_catalogue"]
    assert outcome.expectation == "expect_event_items_in_catalogue"
    assert outcome.observed_value["unknown_share"] == pytest.approx(0.12)
    assert outcome.observed_value["examples"] == ["ghost"]
    assert validate(events, max_unknown_item_share=0.15).success


def test_volume_drop_of_ninety_percent_blocks():
    report = validate(make_events(), previous_volumes=[200] * 7)  # 20 rows vs a mean of 200
    outcome = failed(report)["events.interval_volume_within_band"]
    assert outcome.expectation == "expect_table_row_count_to_be_between"
    assert outcome.observed_value == N_INTERVAL
    assert "100" in outcome.details  # lower bound 200 * (1 - 0.5)
    assert set(failed(report)) == {"events.interval_volume_within_band"}


def test_volume_uses_only_the_last_history_runs():
    # the old spike is outside volume_history_runs=7, so the mean is 20 and 20 rows pass
    assert validate(make_events(), previous_volumes=[10_000] + [N_INTERVAL] * 7).success


def test_volume_check_passes_without_history():
    assert validate(make_events(), previous_volumes=[]).success


@pytest.mark.parametrize("previous_volumes", [[], [N_INTERVAL] * 3])
def test_empty_interval_always_blocks(previous_volumes):
    events = make_events(n_interval=0)
    failures = failed(validate(events, previous_volumes=previous_volumes))
    assert failures["events.interval_volume_within_band"].observed_value == 0


@pytest.mark.parametrize("column", ["event_type", "user_id", "event_ts"])
def test_missing_column_is_named_not_a_crash(column):
    report = validate(make_events().drop(columns=[column]))
    outcome = failed(report)[f"events.{column}_present"]
    assert outcome.column == column and outcome.expectation == "expect_column_to_exist"
    assert column in report.summary()


@pytest.mark.parametrize(
    ("column", "convert", "observed"),
    [
        ("event_ts", lambda s: s.astype(str), "str"),
        ("user_id", lambda s: s.str.slice(1).astype(float), "float64"),
        ("event_ts", lambda s: s.dt.tz_localize(None), "datetime64[us]"),
        ("value", lambda s: s.astype(str), "str"),
    ],
)
def test_wrong_column_type_is_named(column, convert, observed):
    events = make_events()
    events[column] = convert(events[column])
    failures = failed(validate(events))
    outcome = failures[f"events.{column}_dtype"]
    assert outcome.column == column and outcome.observed_value == observed
    # checks that read the column are skipped rather than raising inside GX
    assert all("could not be evaluated" not in r.details for r in failures.values())


def test_object_string_columns_are_accepted():
    events = make_events().astype({"user_id": object, "query": object})
    assert validate(events).success


def test_event_type_share_bounds():
    events = make_events()  # the interval holds 3 or 4 of each of the six types
    assert validate(events, event_type_share_bounds={"purchase": (0.1, 0.3)}).success
    outcome = failed(validate(events, event_type_share_bounds={"purchase": (0.5, 1.0)}))[
        "events.event_type_share_within_bounds"
    ]
    assert outcome.observed_value == {"purchase": {"share": pytest.approx(3 / 20), "bounds": [0.5, 1.0]}}


def test_catalogue_faults_block():
    items = make_items()
    items.loc[1, "item_id"] = "i0"
    items.loc[2, "title"] = None
    failures = failed(validate(make_events(), items))
    assert failures["items.item_id_unique"].suite == "item_catalogue"
    assert failures["items.title_not_null"].column == "title"


@pytest.mark.parametrize("warn", ["events.user_id_not_null", "expect_column_values_to_not_be_null"])
def test_warning_severity_keeps_the_run_going(warn):
    events = make_events()
    events.loc[4, "user_id"] = None
    report = validate(events, warning_expectations=(warn,))
    assert report.success
    assert [w.key for w in report.warnings] == ["events.user_id_not_null"]
    assert report.warnings[0].severity == "warning"
    assert "warning" in report.summary() and "user_id" in report.summary()
    assert raise_for_blocking(report) is report


def test_raise_for_blocking_carries_the_report():
    events = make_events()
    events.loc[4, "user_id"] = None
    report = validate(events)
    with pytest.raises(DataValidationError) as info:
        raise_for_blocking(report)
    assert info.value.report is report
    assert str(info.value) == report.summary()


def test_summary_names_expectation_column_and_observed_value():
    events = make_events()
    events.loc[12, "event_type"] = "wishlist"
    summary = validate(events, previous_volumes=[200] * 7).summary()
    assert "\n" not in summary
    assert "expect_column_values_to_be_in_set on event_type" in summary
    assert "wishlist" in summary
    assert "expect_table_row_count_to_be_between on event_ts: observed 20" in summary
    assert "warning_expectations" in summary and "re-run after the late load" in summary


def test_rows_are_ready_for_a_database_insert():
    events = make_events()
    events.loc[20, "query"] = "'; DROP TABLE events; --\x00"
    events.loc[20, "event_type"] = "nul\x00type"
    rows = validate(events).rows()
    assert rows and set(rows[0]) == {
        "suite",
        "expectation",
        "column_name",
        "severity",
        "success",
        "observed_value",
        "details",
    }
    for row in rows:
        json.loads(row["observed_value"])
        assert "\x00" not in row["observed_value"] and "\x00" not in row["details"]
    bad = [r for r in rows if not r["success"]]
    assert [r["column_name"] for r in bad] == ["event_type"]


def test_sql_metacharacters_and_odd_unicode_do_not_break_validation():
    events = make_events()
    odd = [
        "'; DROP TABLE events; --",
        'a"b`c\\d',
        "\u202eevil\u200b",
        "emoji 😀 ünïcödé",
        "%_ LIKE 'x' {col} @p :name",
        "x\x00y",
    ]
    search_rows = events.index[events["event_type"] == "search"]
    events.loc[search_rows, "query"] = odd[: len(search_rows)]
    events["session_id"] = [odd[k % len(odd)] for k in range(len(events))]
    items = make_items()
    items["title"] = [odd[k % len(odd)] for k in range(len(items))]
    report = validate(events, items)
    assert report.success, report.summary()


def test_clean_drops_exact_duplicates_and_trims_text_but_never_ids():
    events = make_events()
    events.loc[1, "event_type"] = "click\t"
    events.loc[3, "query"] = "  lamp "
    padded = events.iloc[[2]].assign(event_id=" e2")  # a different id: kept, never merged into "e2"
    exact = events.iloc[[5, 6]]
    dirty = pd.concat([events, padded, exact], ignore_index=True)

    cleaned, counts = clean_events(dirty)
    assert counts == {"exact_duplicates_dropped": 2, "values_trimmed": 2}
    assert len(cleaned) == len(events) + 1
    assert cleaned.loc[1, "event_type"] == "click" and cleaned.loc[3, "query"] == "lamp"
    assert " e2" in set(cleaned["event_id"]) and "e2" in set(cleaned["event_id"])
    assert list(cleaned.columns) == list(EVENT_COLUMNS)
    assert dirty.loc[1, "event_type"] == "click\t"  # input untouched


def test_padded_ids_are_kept_and_named_not_merged():
    events = make_events()
    events.loc[0, "user_id"] = " " + str(events.loc[0, "user_id"])
    events.loc[1, "user_id"] = str(events.loc[1, "user_id"]) + "\t"
    cleaned, counts = clean_events(events)
    assert counts["values_trimmed"] == 0 and cleaned.loc[0, "user_id"] == events.loc[0, "user_id"]
    report = validate(cleaned)
    failed = {r.key: r for r in report.blocking_failures}
    assert set(failed) == {"events.user_id_unpadded"}, report.summary()
    outcome = failed["events.user_id_unpadded"]
    assert outcome.expectation == "expect_ids_without_surrounding_whitespace"
    assert outcome.observed_value["padded_values"] == 2 and repr(events.loc[0, "user_id"]) in outcome.details
    # Accepted explicitly, it is recorded as a warning and the run goes on.
    accepted = validate(cleaned, warning_expectations=("expect_ids_without_surrounding_whitespace",))
    assert accepted.success and [w.key for w in accepted.warnings] == ["events.user_id_unpadded"]


def test_clean_keeps_rows_that_differ_in_any_column():
    events = make_events()
    near = events.iloc[[3]].assign(session_id="other")
    cleaned, counts = clean_events(pd.concat([events, near], ignore_index=True))
    assert counts == {"exact_duplicates_dropped": 0, "values_trimmed": 0}
    assert len(cleaned) == len(events) + 1


def test_clean_items_and_wrongly_typed_columns():
    items = pd.concat([make_items(), make_items().iloc[[0]]], ignore_index=True)
    items.loc[1, "title"] = " Item 1\n"
    cleaned, counts = clean_items(items)
    assert counts == {"exact_duplicates_dropped": 1, "values_trimmed": 1}
    assert list(cleaned.columns) == list(ITEM_COLUMNS)
    # a float user_id column is left alone for validation to report
    events = make_events().assign(user_id=1.5)
    _, counts = clean_events(events)
    assert counts["values_trimmed"] == 0


def test_data_docs_index_is_written(tmp_path):
    events = make_events()
    events.loc[4, "user_id"] = None
    report = validate(events, docs_dir=tmp_path / "docs")
    assert report.docs_path == tmp_path / "docs" / "index.html"
    assert report.docs_path.is_file()
    html = "".join(p.read_text(encoding="utf-8") for p in (tmp_path / "docs").rglob("*.html"))
    assert "behaviour_events" in html and "item_catalogue" in html
    assert str(report.docs_path) in report.summary()


def test_empty_catalogue_blocks():
    failures = failed(validate(make_events(), make_items().iloc[0:0]))
    assert failures["items.not_empty"].observed_value == 0
    assert failures["events.items_in_catalogue"].observed_value["unknown_share"] == 1.0
