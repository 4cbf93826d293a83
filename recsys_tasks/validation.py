"""Clean and validate one interval snapshot with Great Expectations before anything trains on it.

Two suites are defined in code: ``behaviour_events`` for the events frame and ``item_catalogue`` for
the items frame (canonical columns: :mod:`recsys_tasks.data`). The events frame covers
``[history_start, interval_end)``; the *interval* is ``[interval_start, interval_end)``.

Every check has a stable **key** (``events.<...>`` or ``items.<...>``) and an **expectation name**
(the Great Expectations type, or ``expect_*`` for the few checks computed here). A failed check is a
*warning* when its key or its expectation name is listed in ``ValidationConfig.warning_expectations``
and *blocking* otherwise; the run stops on blocking failures only.

=======================================  =================================================  ==========
key                                      expectation                                        column
=======================================  =================================================  ==========
events.<col>_present                     expect_column_to_exist                             each
events.<col>_dtype                       expect_column_dtype_to_be_canonical (computed)     each
events.event_id_not_null                 expect_column_values_to_not_be_null                event_id
events.user_id_not_null                  expect_column_values_to_not_be_null                user_id
events.event_ts_not_null                 expect_column_values_to_not_be_null                event_ts
events.item_id_not_null                  expect_column_values_to_not_be_null (not search)   item_id
events.event_type_known                  expect_column_values_to_be_in_set                  event_type
events.event_ts_in_window                expect_column_values_to_be_between                 event_ts
events.event_id_unique                   expect_column_values_to_be_unique                  event_id
events.no_duplicate_rows                 expect_no_duplicate_event_rows (computed)          event_id
events.rating_in_range                   expect_column_values_to_be_between ('rate')        value
events.price_in_range                    expect_column_values_to_be_between (prices)        value
events.interval_volume_within_band       expect_table_row_count_to_be_between               event_ts
events.items_in_catalogue                expect_event_items_in_catalogue (computed)         item_id
events.event_type_share_within_bounds    expect_event_type_share_within_bounds (computed)   event_type
items.<col>_present, items.<col>_dtype   as for events                                      each
items.not_empty                          expect_table_row_count_to_be_between               (table)
items.item_id_not_null                   expect_column_values_to_not_be_null                item_id
items.item_id_unique                     expect_column_values_to_be_unique                  item_id
items.title_not_null                     expect_column_values_to_not_be_null                title
=======================================  =================================================  ==========

Column dtypes are checked here rather than with ``expect_column_values_to_be_in_type_list``: in GX
1.24 that expectation recognises neither pandas 3's default ``str`` dtype nor timezone-aware datetime
dtypes, so it would fail every canonical frame. The interval volume *is* a GX expectation (a
row-count bound computed from ``previous_volumes``, with a row condition selecting the interval);
catalogue membership and event-type shares are computed here because a catalogue-sized
``value_set`` would be copied into the suite and the Data Docs. When a column is missing or has the
wrong dtype, the checks that read it are skipped (the presence/dtype failure names it) instead of
failing with an exception. Prices are ``value`` of ``purchase``/``add_to_cart`` events and must lie in
``[config.min_value, config.max_value]``; ratings in ``[1, 5]``. The volume band uses the last
``config.volume_history_runs`` of ``previous_volumes``; with none, only "at least one row" is checked.
Cleaning drops exact duplicate rows before validation, which would hide a double load (the same rows
loaded twice) from ``events.event_id_unique``; so the caller passes how many event rows cleaning
dropped, and ``events.no_duplicate_rows`` fails when there were any (list it as a warning to go on
with the de-duplicated rows instead).
"""

from __future__ import annotations

import json
import logging
import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys_tasks.config import EVENT_TYPES, ValidationConfig
from recsys_tasks.timeutil import utc

logger = logging.getLogger(__name__)

EVENTS_SUITE = "behaviour_events"
ITEMS_SUITE = "item_catalogue"

#: Canonical dtype family of each column: "string", "utc_datetime" or "number".
EVENT_DTYPES: dict[str, str] = {
    "event_id": "string",
    "user_id": "string",
    "item_id": "string",
    "event_type": "string",
    "event_ts": "utc_datetime",
    "value": "number",
    "query": "string",
    "session_id": "string",
}
ITEM_DTYPES: dict[str, str] = {
    "item_id": "string",
    "title": "string",
    "category": "string",
    "created_at": "utc_datetime",
}

#: Event types whose ``value`` is a price, checked against ``[min_value, max_value]``.
PRICED_EVENT_TYPES: tuple[str, ...] = ("purchase", "add_to_cart")
RATING_RANGE: tuple[float, float] = (1.0, 5.0)

_DTYPE_EXPECTATION = "expect_column_dtype_to_be_canonical"
_ITEMS_IN_CATALOGUE = "expect_event_items_in_catalogue"
_TYPE_SHARE = "expect_event_type_share_within_bounds"
_NO_DUPLICATE_ROWS = "expect_no_duplicate_event_rows"
_EXAMPLES = 5
_MAX_TEXT = 200
_REMEDY = (
    "Fix the source data or re-run after the late load; to accept a failure, list its expectation "
    "or key in validation.warning_expectations."
)


class DataValidationError(Exception):
    """Blocking expectations failed; ``.report`` holds every outcome."""

    def __init__(self, report: ValidationReport) -> None:
        super().__init__(report.summary())
        self.report = report


@dataclass(frozen=True)
class ExpectationOutcome:
    """The result of one check: GX-evaluated or computed here, in the same shape."""

    suite: str
    expectation: str
    column: str | None
    severity: str  # "blocking" or "warning"
    success: bool
    observed_value: Any  # JSON-serialisable
    details: str
    key: str = ""

    def describe(self) -> str:
        """``key (expectation on column: observed ...)`` for messages."""
        where = f" on {self.column}" if self.column else ""
        observed = _truncate(json.dumps(self.observed_value, ensure_ascii=False), 300)
        return f"{self.key} ({self.expectation}{where}: observed {observed}; {self.details})"


@dataclass
class ValidationReport:
    """All outcomes of one run's validation, the cleaning counts and where the Data Docs are."""

    run_id: str
    results: list[ExpectationOutcome] = field(default_factory=list)
    cleaning_counts: Mapping[str, int] = field(default_factory=dict)
    docs_path: Path | None = None

    @property
    def blocking_failures(self) -> list[ExpectationOutcome]:
        return [r for r in self.results if not r.success and r.severity == "blocking"]

    @property
    def warnings(self) -> list[ExpectationOutcome]:
        return [r for r in self.results if not r.success and r.severity == "warning"]

    @property
    def success(self) -> bool:
        """True when no blocking expectation failed (warnings allowed)."""
        return not self.blocking_failures

    def rows(self) -> list[dict[str, Any]]:
        """One dict per outcome, ready for a parameterised insert (``observed_value`` is JSON text)."""
        return [
            {
                "suite": r.suite,
                "expectation": r.expectation,
                "column_name": r.column,
                "severity": r.severity,
                "success": bool(r.success),
                "observed_value": json.dumps(r.observed_value, ensure_ascii=False),
                "details": f"{r.key}: {r.details}" if r.key else r.details,
            }
            for r in self.results
        ]

    def summary(self) -> str:
        """One readable paragraph: what failed, on which column, what was observed, what to do."""
        checked = len(self.results)
        docs = f" Data Docs: {self.docs_path}." if self.docs_path else ""
        cleaned = ""
        if any(self.cleaning_counts.values()):
            cleaned = " Cleaning: " + ", ".join(f"{k}={v}" for k, v in self.cleaning_counts.items()) + "."
        warned = ""
        if self.warnings:
            warned = f" {len(self.warnings)} warning(s), recorded but not blocking: " + "; ".join(
                w.describe() for w in self.warnings
            ) + "."
        if self.success:
            return (
                f"Data validation passed for run {self.run_id}: {checked} checks, no blocking failures."
                f"{warned}{cleaned}{docs}"
            )
        blocking = "; ".join(b.describe() for b in self.blocking_failures)
        return (
            f"Data validation failed for run {self.run_id}: {len(self.blocking_failures)} of {checked} "
            f"checks failed and block the run: {blocking}.{warned}{cleaned} {_REMEDY}{docs}"
        )


def raise_for_blocking(report: ValidationReport) -> ValidationReport:
    """Raise ``DataValidationError`` if any blocking expectation failed; else return the report."""
    if not report.success:
        raise DataValidationError(report)
    return report


# --------------------------------------------------------------------------------------------- cleaning


def clean_events(events: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """Trim whitespace in the string columns, then drop exact duplicate rows; return the counts."""
    return _clean(events, [c for c, kind in EVENT_DTYPES.items() if kind == "string"])


def clean_items(items: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """Trim whitespace in the catalogue's string columns, then drop exact duplicate rows."""
    return _clean(items, [c for c, kind in ITEM_DTYPES.items() if kind == "string"])


def _clean(frame: pd.DataFrame, string_columns: Sequence[str]) -> tuple[pd.DataFrame, dict[str, int]]:
    # Trimming first makes " a" and "a" the same value, so such rows then count as duplicates.
    # Only str values are touched: a column of the wrong type is left for validation to report.
    out = frame.copy()
    trimmed = 0
    for col in string_columns:
        if col not in out.columns:
            continue
        series = out[col]
        if isinstance(series.dtype, pd.StringDtype):  # vectorised path for the canonical dtype
            stripped = series.str.strip()
            changed = series.notna() & (stripped != series)
            n = int(changed.sum())
            if n:
                out[col] = stripped
                trimmed += n
            continue
        if series.dtype != object:
            continue
        is_text = series.map(lambda v: isinstance(v, str), na_action="ignore").fillna(False).astype(bool)
        if not is_text.any():
            continue
        stripped = series[is_text].map(str.strip)
        changed = stripped != series[is_text]
        n = int(changed.sum())
        if n:
            out.loc[stripped.index[changed.to_numpy()], col] = stripped[changed]
            trimmed += n
    before = len(out)
    try:
        out = out.drop_duplicates(keep="first", ignore_index=True)
    except TypeError:  # unhashable cell values (lists, dicts): compare their text instead
        keep = ~out.astype(str).duplicated(keep="first")
        out = out.loc[keep.to_numpy()].reset_index(drop=True)
    counts = {"exact_duplicates_dropped": before - len(out), "values_trimmed": trimmed}
    logger.info("cleaned %d rows: %s", before, counts)
    return out, counts


# ------------------------------------------------------------------------------------------- validation


def validate_snapshot(
    events: pd.DataFrame,
    items: pd.DataFrame,
    *,
    interval_start: datetime,
    interval_end: datetime,
    history_start: datetime,
    config: ValidationConfig,
    previous_volumes: Sequence[int],
    docs_dir: Path | None,
    run_id: str,
    cleaning_counts: Mapping[str, int] | None = None,
    event_duplicates_dropped: int = 0,
) -> ValidationReport:
    """Run the ``behaviour_events`` and ``item_catalogue`` checks; write Data Docs to ``docs_dir``.

    ``previous_volumes`` are earlier runs' interval row counts, oldest first; the last
    ``config.volume_history_runs`` form the trailing mean. ``event_duplicates_dropped`` is the
    number of exact duplicate event rows cleaning removed from ``events`` (see ``clean_events``).
    """
    start, end, hist = (utc(interval_start), utc(interval_end), utc(history_start))
    if not hist <= start < end:
        raise ValueError(
            f"need history_start <= interval_start < interval_end, got {hist}, {start}, {end}; "
            "pass the run's data interval"
        )
    gx = _import_gx()
    context = _context(gx, docs_dir)
    severity = _severity_fn(config)
    results: list[ExpectationOutcome] = []

    event_ok = _schema_outcomes(events, EVENT_DTYPES, "events", EVENTS_SUITE, severity, results)
    item_ok = _schema_outcomes(items, ITEM_DTYPES, "items", ITEMS_SUITE, severity, results)

    event_checks = _event_expectations(gx, event_ok, start, end, hist, config, previous_volumes)
    item_checks = _item_expectations(gx, item_ok)
    for suite_name, frame, checks in (
        (EVENTS_SUITE, events, event_checks),
        (ITEMS_SUITE, items, item_checks),
    ):
        # GX gets only the columns its checks read: every row condition filters the whole batch, and
        # free-text columns (query, titles) would make each filter copy far more than it needs.
        read = sorted({col for check in checks for col in check.columns}, key=list(frame.columns).index)
        results.extend(_run_suite(gx, context, suite_name, frame[read], checks, read, run_id, severity))

    results.extend(_computed_event_checks(events, items, event_ok, item_ok, start, end, config, severity))
    results.append(_duplicate_rows_outcome(len(events), event_duplicates_dropped, severity))

    docs_path = _build_docs(context, docs_dir) if docs_dir is not None else None
    report = ValidationReport(
        run_id=run_id, results=results, cleaning_counts=dict(cleaning_counts or {}), docs_path=docs_path
    )
    log = logger.warning if (report.blocking_failures or report.warnings) else logger.info
    log("%s", report.summary())
    return report


@dataclass(frozen=True)
class _Check:
    key: str
    columns: tuple[str, ...]  # every column the check reads; skipped unless all are present and typed
    expectation: Any  # the GX expectation
    note: str = ""  # why the bounds are what they are, added to the outcome's details


def _event_expectations(
    gx: Any,
    ok: set[str],
    start: datetime,
    end: datetime,
    hist: datetime,
    config: ValidationConfig,
    previous_volumes: Sequence[int],
) -> list[_Check]:
    from great_expectations.expectations.row_conditions import Column

    E = gx.expectations
    low, high = _volume_bounds(previous_volumes, config)
    recent = list(previous_volumes)[-config.volume_history_runs :]
    volume_note = (
        f"band ±{config.volume_band:.0%} around the mean {sum(recent) / len(recent):g} of the last "
        f"{len(recent)} runs' interval volumes"
        if recent
        else "no earlier volumes yet, so only a non-empty interval is required"
    )
    checks = [
        _Check(f"events.{col}_not_null", (col,), E.ExpectColumnValuesToNotBeNull(column=col))
        for col in ("event_id", "user_id", "event_ts")
    ]
    checks += [
        _Check(
            "events.item_id_not_null",
            ("item_id", "event_type"),
            E.ExpectColumnValuesToNotBeNull(column="item_id", row_condition=Column("event_type") != "search"),
        ),
        _Check(
            "events.event_type_known",
            ("event_type",),
            E.ExpectColumnValuesToBeInSet(column="event_type", value_set=list(EVENT_TYPES)),
        ),
        _Check(
            "events.event_ts_in_window",
            ("event_ts",),
            E.ExpectColumnValuesToBeBetween(
                column="event_ts", min_value=hist, max_value=end, strict_max=True
            ),
        ),
        _Check("events.event_id_unique", ("event_id",), E.ExpectColumnValuesToBeUnique(column="event_id")),
        _Check(
            "events.rating_in_range",
            ("value", "event_type"),
            E.ExpectColumnValuesToBeBetween(
                column="value",
                min_value=RATING_RANGE[0],
                max_value=RATING_RANGE[1],
                row_condition=Column("event_type") == "rate",
            ),
        ),
        _Check(
            "events.price_in_range",
            ("value", "event_type"),
            E.ExpectColumnValuesToBeBetween(
                column="value",
                min_value=config.min_value,
                max_value=config.max_value,
                row_condition=Column("event_type").is_in(list(PRICED_EVENT_TYPES)),
            ),
        ),
        _Check(
            "events.interval_volume_within_band",
            ("event_ts",),
            E.ExpectTableRowCountToBeBetween(
                min_value=low,
                max_value=high,
                row_condition=(Column("event_ts") >= start) & (Column("event_ts") < end),
            ),
            note=volume_note,
        ),
    ]
    return [c for c in checks if set(c.columns) <= ok]


def _item_expectations(gx: Any, ok: set[str]) -> list[_Check]:
    E = gx.expectations
    checks = [
        _Check("items.not_empty", (), E.ExpectTableRowCountToBeBetween(min_value=1)),
        _Check("items.item_id_not_null", ("item_id",), E.ExpectColumnValuesToNotBeNull(column="item_id")),
        _Check("items.item_id_unique", ("item_id",), E.ExpectColumnValuesToBeUnique(column="item_id")),
        _Check("items.title_not_null", ("title",), E.ExpectColumnValuesToNotBeNull(column="title")),
    ]
    return [c for c in checks if set(c.columns) <= ok]


def _volume_bounds(previous_volumes: Sequence[int], config: ValidationConfig) -> tuple[int, int | None]:
    """Row-count bounds for the interval: ±band around the trailing mean; at least one row always."""
    recent = [int(v) for v in list(previous_volumes)[-config.volume_history_runs :]]
    if not recent:
        return 1, None
    mean = sum(recent) / len(recent)
    if mean <= 0:
        return 1, None
    return max(1, math.ceil(mean * (1.0 - config.volume_band))), math.floor(mean * (1.0 + config.volume_band))


def _run_suite(
    gx: Any,
    context: Any,
    suite_name: str,
    frame: pd.DataFrame,
    checks: Sequence[_Check],
    present: Sequence[str],
    run_name: str,
    severity: Callable[[str, str], str],
) -> list[ExpectationOutcome]:
    suite = gx.ExpectationSuite(name=suite_name)
    for col in present:  # column presence as GX expectations too, so the Data Docs show the schema
        presence = gx.expectations.ExpectColumnToExist(column=col, meta={"key": f"_{col}_present"})
        suite.add_expectation(presence)
    for check in checks:
        check.expectation.meta = {"key": check.key, "note": check.note}
        suite.add_expectation(check.expectation)
    suite = context.suites.add(suite)
    batch_definition = (
        context.data_sources.add_pandas(f"{suite_name}_source")
        .add_dataframe_asset(suite_name)
        .add_batch_definition_whole_dataframe("snapshot")
    )
    name = f"{suite_name}_{uuid.uuid4().hex[:8]}"
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=name, data=batch_definition, suite=suite)
    )
    from great_expectations.core.run_identifier import RunIdentifier

    result = definition.run(
        batch_parameters={"dataframe": frame},
        result_format={"result_format": "BASIC", "partial_unexpected_count": _EXAMPLES},
        run_id=RunIdentifier(run_name=run_name),
    )
    outcomes = []
    for r in result.results:
        meta = r.expectation_config.meta or {}
        key = meta.get("key", "")
        if key.startswith("_"):  # presence already reported by _schema_outcomes
            continue
        outcomes.append(_outcome_from_gx(suite_name, key, meta.get("note", ""), r, severity))
    return outcomes


def _outcome_from_gx(
    suite: str, key: str, note: str, r: Any, severity: Callable[[str, str], str]
) -> ExpectationOutcome:
    cfg = r.expectation_config
    name = cfg.type
    column = cfg.kwargs.get("column")
    res = dict(r.result or {})
    error = _exception_message(r.exception_info)
    if error:
        observed: Any = None
        details = f"could not be evaluated: {error}"
    elif "observed_value" in res:
        observed = _jsonable(res["observed_value"])
        bounds = {k: cfg.kwargs.get(k) for k in ("min_value", "max_value") if cfg.kwargs.get(k) is not None}
        details = f"expected within {_jsonable(bounds)}" if bounds else "see observed value"
    else:
        count = int(res.get("unexpected_count") or 0)
        total = int(res.get("element_count") or 0)
        examples = _jsonable(list(res.get("partial_unexpected_list") or [])[:_EXAMPLES])
        observed = {
            "unexpected_count": count,
            "element_count": total,
            "unexpected_percent": round(float(res.get("unexpected_percent") or 0.0), 4),
            "examples": examples,
        }
        details = f"{count} of {total} checked rows unexpected" + (f", e.g. {examples}" if count else "")
    if note:
        details = f"{details} ({note})"
    success = bool(r.success) and not error
    if column is None and key == "events.interval_volume_within_band":
        column = "event_ts"  # a row count, but over the rows whose event_ts falls in the interval
    return ExpectationOutcome(
        suite=suite,
        expectation=name,
        column=column,
        severity=severity(name, key),
        success=success,
        observed_value=observed,
        details=_clean_text(details),
        key=key,
    )


def _computed_event_checks(
    events: pd.DataFrame,
    items: pd.DataFrame,
    event_ok: set[str],
    item_ok: set[str],
    start: datetime,
    end: datetime,
    config: ValidationConfig,
    severity: Callable[[str, str], str],
) -> list[ExpectationOutcome]:
    out = []
    if "item_id" in event_ok and "item_id" in item_ok:
        referenced = events["item_id"].dropna()
        unknown = referenced[~referenced.isin(items["item_id"].dropna())]
        share = len(unknown) / len(referenced) if len(referenced) else 0.0
        ok = share <= config.max_unknown_item_share
        out.append(
            ExpectationOutcome(
                suite=EVENTS_SUITE,
                expectation=_ITEMS_IN_CATALOGUE,
                column="item_id",
                severity=severity(_ITEMS_IN_CATALOGUE, "events.items_in_catalogue"),
                success=ok,
                observed_value={
                    "unknown_share": round(share, 6),
                    "unknown_events": len(unknown),
                    "item_events": len(referenced),
                    "examples": _jsonable(list(unknown.drop_duplicates().head(_EXAMPLES))),
                },
                details=_clean_text(
                    f"{len(unknown)} of {len(referenced)} item events reference items missing from the "
                    f"catalogue (share {share:.2%}, tolerance {config.max_unknown_item_share:.2%})"
                ),
                key="events.items_in_catalogue",
            )
        )
    if config.event_type_share_bounds and {"event_type", "event_ts"} <= event_ok:
        in_interval = events.loc[(events["event_ts"] >= start) & (events["event_ts"] < end), "event_type"]
        if len(in_interval):  # an empty interval already fails the volume check
            shares = in_interval.value_counts(normalize=True)
            observed = {t: round(float(shares.get(t, 0.0)), 6) for t in config.event_type_share_bounds}
            outside = {
                t: {"share": observed[t], "bounds": [lo, hi]}
                for t, (lo, hi) in config.event_type_share_bounds.items()
                if not lo <= observed[t] <= hi
            }
            out.append(
                ExpectationOutcome(
                    suite=EVENTS_SUITE,
                    expectation=_TYPE_SHARE,
                    column="event_type",
                    severity=severity(_TYPE_SHARE, "events.event_type_share_within_bounds"),
                    success=not outside,
                    observed_value=outside or observed,
                    details=(
                        f"interval shares outside bounds: {outside}"
                        if outside
                        else f"interval shares within bounds over {len(in_interval)} events"
                    ),
                    key="events.event_type_share_within_bounds",
                )
            )
    return out


def _duplicate_rows_outcome(
    kept: int, dropped: int, severity: Callable[[str, str], str]
) -> ExpectationOutcome:
    key = "events.no_duplicate_rows"
    return ExpectationOutcome(
        suite=EVENTS_SUITE,
        expectation=_NO_DUPLICATE_ROWS,
        column="event_id",
        severity=severity(_NO_DUPLICATE_ROWS, key),
        success=dropped == 0,
        observed_value={"duplicate_rows_dropped": int(dropped), "rows_extracted": int(kept + dropped)},
        details=(
            f"cleaning dropped {dropped} exact duplicate event rows of {kept + dropped} extracted: the same "
            "events were loaded twice (a double load?)"
            if dropped
            else "no exact duplicate event rows"
        ),
        key=key,
    )


def _schema_outcomes(
    frame: pd.DataFrame,
    dtypes: Mapping[str, str],
    prefix: str,
    suite: str,
    severity: Callable[[str, str], str],
    results: list[ExpectationOutcome],
) -> set[str]:
    """Append presence and dtype outcomes; return the columns that are present with the right dtype."""
    ok: set[str] = set()
    for col, kind in dtypes.items():
        present = col in frame.columns
        key = f"{prefix}.{col}_present"
        results.append(
            ExpectationOutcome(
                suite=suite,
                expectation="expect_column_to_exist",
                column=col,
                severity=severity("expect_column_to_exist", key),
                success=present,
                observed_value=present,
                details="present" if present else f"column missing; found {sorted(map(str, frame.columns))}",
                key=key,
            )
        )
        if not present:
            continue
        series = frame[col]
        if isinstance(series, pd.DataFrame):  # duplicated column label
            good, observed = False, f"{series.shape[1]} columns named {col}"
        else:
            good, observed = _dtype_ok(series, kind), str(series.dtype)
        key = f"{prefix}.{col}_dtype"
        results.append(
            ExpectationOutcome(
                suite=suite,
                expectation=_DTYPE_EXPECTATION,
                column=col,
                severity=severity(_DTYPE_EXPECTATION, key),
                success=good,
                observed_value=observed,
                details=f"expected {_DTYPE_WORDS[kind]}"
                + ("" if good else "; checks reading this column were skipped"),
                key=key,
            )
        )
        if good:
            ok.add(col)
    return ok


_DTYPE_WORDS = {
    "string": "a string column (str/string dtype, or object holding only str)",
    "utc_datetime": "a timezone-aware UTC datetime column",
    "number": "a numeric (float) column",
}


def _dtype_ok(series: pd.Series, kind: str) -> bool:
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


def _severity_fn(config: ValidationConfig) -> Callable[[str, str], str]:
    warn = set(config.warning_expectations)

    def severity(expectation: str, key: str) -> str:
        return "warning" if expectation in warn or key in warn else "blocking"

    return severity


# ------------------------------------------------------------------------------------- GX plumbing


def _import_gx() -> Any:
    # GX logs at INFO on import and while validating; keep our task logs about our data.
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    import great_expectations as gx

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    return gx


def _context(gx: Any, docs_dir: Path | None) -> Any:
    """An in-memory GX context (no analytics, no progress bars) with one local Data Docs site."""
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    sites = {}
    if docs_dir is not None:
        sites["recsys"] = {
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        }
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        data_docs_sites=sites,
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    return gx.get_context(project_config=config, mode="ephemeral")


def _build_docs(context: Any, docs_dir: Path) -> Path:
    docs_dir = Path(docs_dir)
    docs_dir.mkdir(parents=True, exist_ok=True)
    context.build_data_docs(site_names=["recsys"])
    index = docs_dir / "index.html"
    if not index.is_file():
        raise FileNotFoundError(
            f"Great Expectations did not write {index}; check that {docs_dir} is writable"
        )
    return index


def _exception_message(info: Any) -> str | None:
    """GX reports either one exception dict or a dict of them keyed by metric id."""
    if not isinstance(info, Mapping):
        return None
    if info.get("raised_exception"):
        return str(info.get("exception_message") or "exception")
    for value in info.values():
        if isinstance(value, Mapping) and value.get("raised_exception"):
            return str(value.get("exception_message") or "exception")
    return None


# ----------------------------------------------------------------------------------------- helpers



def _jsonable(value: Any) -> Any:
    """JSON-ready copy: timestamps as ISO text, NaN as null, numpy scalars as Python, text cleaned."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _truncate(_clean_text(value), _MAX_TEXT)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) or math.isinf(value) else float(value)
    if isinstance(value, (pd.Timestamp, datetime, date)):
        return value.isoformat()
    if value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, np.ndarray, pd.Series)):
        return [_jsonable(v) for v in value]
    return _truncate(_clean_text(str(value)), _MAX_TEXT)


def _clean_text(text: str) -> str:
    # PostgreSQL text cannot hold NUL, and a raw NUL is unreadable in a log line.
    return text.replace("\x00", "\ufffd")


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


__all__ = [
    "EVENTS_SUITE",
    "EVENT_DTYPES",
    "ITEM_DTYPES",
    "ITEMS_SUITE",
    "DataValidationError",
    "ExpectationOutcome",
    "ValidationReport",
    "clean_events",
    "clean_items",
    "raise_for_blocking",
    "validate_snapshot",
]
