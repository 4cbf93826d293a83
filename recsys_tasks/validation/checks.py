"""The checks computed here rather than by GX: schema and dtypes, duplicate rows, the volume band.

Dtypes are checked here because GX 1.24's ``expect_column_values_to_be_in_type_list`` recognises
neither pandas 3's ``str`` dtype nor timezone-aware datetimes. The other computed checks (catalogue
membership, type shares, unique event ids, padded ids) are about a whole window and are counted
chunk by chunk in :mod:`recsys_tasks.validation.counters`; their expectation names are here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime

import pandas as pd

from recsys_tasks.config import ValidationConfig
from recsys_tasks.validation.contract import EVENTS_SUITE
from recsys_tasks.validation.outcomes import ExpectationOutcome, Severity

DTYPE_EXPECTATION = "expect_column_dtype_to_be_canonical"
ITEMS_IN_CATALOGUE = "expect_event_items_in_catalogue"
TYPE_SHARE = "expect_event_type_share_within_bounds"
NO_DUPLICATE_ROWS = "expect_no_duplicate_event_rows"
UNPADDED_IDS = "expect_ids_without_surrounding_whitespace"
#: Checks reported under a GX expectation's name but computed by the pipeline (absent from Data Docs):
#: ids may repeat across chunks, so uniqueness is counted over the whole window.
UNIQUE_EVENT_IDS_KEY = "events.event_id_unique"

_DTYPE_WORDS = {
    "string": "a string column (str/string dtype, or object holding only str)",
    "utc_datetime": "a timezone-aware UTC datetime column",
    "number": "a numeric (float) column",
}


def schema_outcomes(
    frame: pd.DataFrame, dtypes: Mapping[str, str], prefix: str, suite: str, severity: Severity
) -> tuple[list[ExpectationOutcome], set[str]]:
    """Presence and dtype outcomes of each canonical column, and the columns present with the right dtype."""
    outcomes: list[ExpectationOutcome] = []
    ok: set[str] = set()
    for col, kind in dtypes.items():
        present = col in frame.columns
        outcomes.append(
            ExpectationOutcome.judged(
                severity,
                suite=suite,
                key=f"{prefix}.{col}_present",
                expectation="expect_column_to_exist",
                column=col,
                success=present,
                observed=present,
                details="present" if present else f"column missing; found {sorted(map(str, frame.columns))}",
            )
        )
        if not present:
            continue
        series = frame[col]
        if isinstance(series, pd.DataFrame):  # duplicated column label
            good, observed = False, f"{series.shape[1]} columns named {col}"
        else:
            good, observed = dtype_ok(series, kind), str(series.dtype)
        outcomes.append(
            ExpectationOutcome.judged(
                severity,
                suite=suite,
                key=f"{prefix}.{col}_dtype",
                expectation=DTYPE_EXPECTATION,
                column=col,
                success=good,
                observed=observed,
                details=f"expected {_DTYPE_WORDS[kind]}"
                + ("" if good else "; checks reading this column were skipped"),
            )
        )
        if good:
            ok.add(col)
    return outcomes, ok


def dtype_ok(series: pd.Series, kind: str) -> bool:
    """Whether ``series`` holds dtype family ``kind`` ("string", "utc_datetime" or "number")."""
    dtype = series.dtype
    if dtype == object and not series.notna().any():
        return True  # all NULL (as drivers return them): no wrong type; nullability is checked apart
    if kind == "string":
        if isinstance(dtype, pd.StringDtype):
            return True
        if dtype == object:
            return pd.api.types.infer_dtype(series, skipna=True) in ("string", "empty")
        return False
    if kind == "utc_datetime":
        return isinstance(dtype, pd.DatetimeTZDtype) and str(dtype.tz) in ("UTC", "utc")
    if kind == "number":
        return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
    raise ValueError(kind)


def duplicate_rows_outcome(kept: int, dropped: int, severity: Severity) -> ExpectationOutcome:
    """Fails when cleaning dropped exact duplicate event rows, which would hide a double load."""
    return ExpectationOutcome.judged(
        severity,
        suite=EVENTS_SUITE,
        key="events.no_duplicate_rows",
        expectation=NO_DUPLICATE_ROWS,
        column="event_id",
        success=dropped == 0,
        observed={"duplicate_rows_dropped": int(dropped), "rows_extracted": int(kept + dropped)},
        details=(
            f"cleaning dropped {dropped} exact duplicate event rows of {kept + dropped} extracted: the same "
            "events were loaded twice (a double load?)"
            if dropped
            else "no exact duplicate event rows"
        ),
    )


def volume_bounds(previous_volumes: Sequence[int], config: ValidationConfig) -> tuple[int, int | None]:
    """Row-count bounds for the interval: ±band around the trailing mean; at least one row always."""
    recent = [int(v) for v in list(previous_volumes)[-config.volume_history_runs :]]
    if not recent:
        return 1, None
    mean = sum(recent) / len(recent)
    if mean <= 0:
        return 1, None
    return max(1, math.ceil(mean * (1.0 - config.volume_band))), math.floor(mean * (1.0 + config.volume_band))


def volume_note(previous_volumes: Sequence[int], config: ValidationConfig) -> str:
    """Why the volume bounds are what they are, for the outcome's details."""
    recent = list(previous_volumes)[-config.volume_history_runs :]
    if not recent:
        return "no earlier volumes yet, so only a non-empty interval is required"
    return (
        f"band ±{config.volume_band:.0%} around the mean {sum(recent) / len(recent):g} of the last "
        f"{len(recent)} runs' interval volumes"
    )


def interval_volume(events: pd.DataFrame, start: datetime, end: datetime) -> int:
    """How many events fall in ``[start, end)``: the volume later runs compare theirs against."""
    if "event_ts" not in events:
        return 0
    return int(((events["event_ts"] >= start) & (events["event_ts"] < end)).sum())
