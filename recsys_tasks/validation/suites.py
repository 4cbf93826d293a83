"""The Great Expectations suites ``behaviour_events`` and ``item_catalogue``, and running them.

GX runs in an ephemeral, in-memory context with one local Data Docs site; each check carries its
stable key in the expectation's ``meta``, so its outcome can be reported under that key.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from recsys_tasks.config import EVENT_TYPES, ValidationConfig
from recsys_tasks.validation.checks import volume_bounds, volume_note
from recsys_tasks.validation.contract import PRICED_EVENT_TYPES, RATING_RANGE
from recsys_tasks.validation.outcomes import EXAMPLES, ExpectationOutcome, Severity, jsonable

VOLUME_KEY = "events.interval_volume_within_band"


@dataclass(frozen=True)
class Check:
    """One GX expectation under its stable key."""

    key: str
    columns: tuple[str, ...]  # every column the check reads; skipped unless all are present and typed
    expectation: Any  # the GX expectation
    note: str = ""  # why the bounds are what they are, added to the outcome's details


def event_checks(
    gx: Any,
    ok: set[str],
    start: datetime,
    end: datetime,
    hist: datetime,
    config: ValidationConfig,
    previous_volumes: Sequence[int],
) -> list[Check]:
    """The ``behaviour_events`` checks whose columns are all in ``ok`` (present, with the right dtype)."""
    from great_expectations.expectations.row_conditions import Column

    E = gx.expectations
    checks = [
        Check(f"events.{col}_not_null", (col,), E.ExpectColumnValuesToNotBeNull(column=col))
        for col in ("event_id", "user_id", "event_ts")
    ]
    checks += [
        Check(
            "events.item_id_not_null",
            ("item_id", "event_type"),
            E.ExpectColumnValuesToNotBeNull(column="item_id", row_condition=Column("event_type") != "search"),
        ),
        Check(
            "events.event_type_known",
            ("event_type",),
            E.ExpectColumnValuesToBeInSet(column="event_type", value_set=list(EVENT_TYPES)),
        ),
        Check(
            "events.event_ts_in_window",
            ("event_ts",),
            E.ExpectColumnValuesToBeBetween(
                column="event_ts", min_value=hist, max_value=end, strict_max=True
            ),
        ),
        Check("events.event_id_unique", ("event_id",), E.ExpectColumnValuesToBeUnique(column="event_id")),
        Check(
            "events.rating_in_range",
            ("value", "event_type"),
            E.ExpectColumnValuesToBeBetween(
                column="value",
                min_value=RATING_RANGE[0],
                max_value=RATING_RANGE[1],
                row_condition=Column("event_type") == "rate",
            ),
        ),
        Check(
            "events.price_in_range",
            ("value", "event_type"),
            E.ExpectColumnValuesToBeBetween(
                column="value",
                min_value=config.min_value,
                max_value=config.max_value,
                row_condition=Column("event_type").is_in(list(PRICED_EVENT_TYPES)),
            ),
        ),
        _volume_check(E, Column, start, end, config, previous_volumes),
    ]
    return [c for c in checks if set(c.columns) <= ok]


def _volume_check(
    E: Any,
    Column: Any,
    start: datetime,
    end: datetime,
    config: ValidationConfig,
    previous_volumes: Sequence[int],
) -> Check:
    # A GX row count with a row condition selecting the interval, so the Data Docs show the band.
    low, high = volume_bounds(previous_volumes, config)
    return Check(
        VOLUME_KEY,
        ("event_ts",),
        E.ExpectTableRowCountToBeBetween(
            min_value=low,
            max_value=high,
            row_condition=(Column("event_ts") >= start) & (Column("event_ts") < end),
        ),
        note=volume_note(previous_volumes, config),
    )


def item_checks(gx: Any, ok: set[str]) -> list[Check]:
    """The ``item_catalogue`` checks whose columns are all in ``ok``."""
    E = gx.expectations
    checks = [
        Check("items.not_empty", (), E.ExpectTableRowCountToBeBetween(min_value=1)),
        Check("items.item_id_not_null", ("item_id",), E.ExpectColumnValuesToNotBeNull(column="item_id")),
        Check("items.item_id_unique", ("item_id",), E.ExpectColumnValuesToBeUnique(column="item_id")),
        Check("items.title_not_null", ("title",), E.ExpectColumnValuesToNotBeNull(column="title")),
    ]
    return [c for c in checks if set(c.columns) <= ok]


def run_suite(
    gx: Any,
    context: Any,
    suite_name: str,
    frame: pd.DataFrame,
    checks: Sequence[Check],
    run_name: str,
    severity: Severity,
) -> list[ExpectationOutcome]:
    """Validate ``frame`` (only the columns the checks read) against one suite; one outcome per check."""
    suite = gx.ExpectationSuite(name=suite_name)
    for col in frame.columns:  # column presence as GX expectations too, so the Data Docs show the schema
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
        result_format={"result_format": "BASIC", "partial_unexpected_count": EXAMPLES},
        run_id=RunIdentifier(run_name=run_name),
    )
    outcomes = []
    for r in result.results:
        meta = r.expectation_config.meta or {}
        key = meta.get("key", "")
        if key.startswith("_"):  # presence is already reported by checks.schema_outcomes
            continue
        outcomes.append(_outcome_from_gx(suite_name, key, meta.get("note", ""), r, severity))
    return outcomes


def _outcome_from_gx(suite: str, key: str, note: str, r: Any, severity: Severity) -> ExpectationOutcome:
    cfg = r.expectation_config
    column = cfg.kwargs.get("column")
    res = dict(r.result or {})
    error = _exception_message(r.exception_info)
    if error:
        observed: Any = None
        details = f"could not be evaluated: {error}"
    elif "observed_value" in res:
        observed = jsonable(res["observed_value"])
        bounds = {k: cfg.kwargs.get(k) for k in ("min_value", "max_value") if cfg.kwargs.get(k) is not None}
        details = f"expected within {jsonable(bounds)}" if bounds else "see observed value"
    else:
        count = int(res.get("unexpected_count") or 0)
        total = int(res.get("element_count") or 0)
        examples = jsonable(list(res.get("partial_unexpected_list") or [])[:EXAMPLES])
        observed = {
            "unexpected_count": count,
            "element_count": total,
            "unexpected_percent": round(float(res.get("unexpected_percent") or 0.0), 4),
            "examples": examples,
        }
        details = f"{count} of {total} checked rows unexpected" + (f", e.g. {examples}" if count else "")
    if column is None and key == VOLUME_KEY:
        column = "event_ts"  # a row count, but over the rows whose event_ts falls in the interval
    return ExpectationOutcome.judged(
        severity,
        suite=suite,
        key=key,
        expectation=cfg.type,
        column=column,
        success=bool(r.success) and not error,
        observed=observed,
        details=f"{details} ({note})" if note else details,
    )


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


def import_gx() -> Any:
    """The ``great_expectations`` module, its logging kept to warnings."""
    # GX logs at INFO on import and while validating; keep our task logs about our data.
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    import great_expectations as gx

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    return gx


def make_context(gx: Any, docs_dir: Path | None) -> Any:
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


def build_docs(context: Any, docs_dir: Path) -> Path:
    """Write the Data Docs site; return its ``index.html``."""
    docs_dir = Path(docs_dir)
    docs_dir.mkdir(parents=True, exist_ok=True)
    context.build_data_docs(site_names=["recsys"])
    index = docs_dir / "index.html"
    if not index.is_file():
        raise FileNotFoundError(
            f"Great Expectations did not write {index}; check that {docs_dir} is writable"
        )
    return index
