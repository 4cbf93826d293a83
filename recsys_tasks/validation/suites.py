"""The Great Expectations suites ``behaviour_events`` and ``item_catalogue``, and running them.

GX runs in an ephemeral, in-memory context with one local Data Docs site; each check carries its
stable key in the expectation's ``meta``, so its outcome can be reported under that key.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from recsys_tasks.config import EVENT_TYPES, ValidationConfig
from recsys_tasks.validation.checks import volume_bounds, volume_note
from recsys_tasks.validation.contract import PRICED_EVENT_TYPES, RATING_RANGE
from recsys_tasks.validation.outcomes import EXAMPLES, ExpectationOutcome, Severity
from recsys_tasks.validation.tally import VOLUME_KEY, Tally


@dataclass(frozen=True)
class Check:
    """One GX expectation under its stable key."""

    key: str
    columns: tuple[str, ...]  # every column the check reads; skipped unless all are present and typed
    expectation: Any  # the GX expectation
    note: str = ""  # why the bounds are what they are, added to the outcome's details


def event_checks(
    gx: Any, ok: set[str], end: datetime, hist: datetime, config: ValidationConfig
) -> list[Check]:
    """The row-level ``behaviour_events`` checks whose columns are all in ``ok`` (present, typed).

    Each judges rows one by one, so it runs on every chunk of a window and the counts add up; the
    checks about the whole window (unique ids, the interval's volume) are not among them.
    """
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
    ]
    return [c for c in checks if set(c.columns) <= ok]


def volume_check(gx: Any, config: ValidationConfig, previous_volumes: Sequence[int]) -> Check:
    """The interval's row count within the band: run on a table with one row per interval event."""
    # A GX expectation (not a computed check) so the Data Docs show the band.
    low, high = volume_bounds(previous_volumes, config)
    return Check(
        VOLUME_KEY,
        ("event_ts",),
        gx.expectations.ExpectTableRowCountToBeBetween(min_value=low, max_value=high),
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


class SuiteRunner:
    """One suite registered in a GX context, run on any number of frames holding ``columns``."""

    def __init__(self, gx: Any, context: Any, name: str, columns: Sequence[str], checks: Sequence[Check]):
        suite = gx.ExpectationSuite(name=name)
        for col in columns:  # column presence as GX expectations too, so the Data Docs show the schema
            presence = gx.expectations.ExpectColumnToExist(column=col, meta={"key": f"_{col}_present"})
            suite.add_expectation(presence)
        for check in checks:
            check.expectation.meta = {"key": check.key, "note": check.note}
            suite.add_expectation(check.expectation)
        suite = context.suites.add(suite)
        batch_definition = (
            context.data_sources.add_pandas(f"{name}_source")
            .add_dataframe_asset(name)
            .add_batch_definition_whole_dataframe("snapshot")
        )
        self.columns = list(columns)
        self._definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=f"{name}_{uuid.uuid4().hex[:8]}", data=batch_definition, suite=suite)
        )

    def run(self, frame: pd.DataFrame, run_name: str) -> list[Tally]:
        """One tally per check on ``frame`` (only ``columns`` are handed to GX); a Data Docs page per call."""
        from great_expectations.core.run_identifier import RunIdentifier

        result = self._definition.run(
            batch_parameters={"dataframe": frame[self.columns]},
            result_format={"result_format": "BASIC", "partial_unexpected_count": EXAMPLES},
            run_id=RunIdentifier(run_name=run_name),
        )
        tallies = [Tally.from_gx(r) for r in result.results]
        # presence is already reported by checks.schema_outcomes
        return [t for t in tallies if not t.key.startswith("_")]


def read_columns(checks: Sequence[Check], columns: Sequence[str]) -> list[str]:
    """The columns the checks read, in the frame's order."""
    # GX gets only these: every row condition filters the whole batch, and free-text columns
    # (query, titles) would make each filter copy far more than it needs.
    order = list(columns)
    return sorted({col for check in checks for col in check.columns}, key=order.index)


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
    runner = SuiteRunner(gx, context, suite_name, read_columns(checks, frame.columns), checks)
    return [t.outcome(suite_name, severity) for t in runner.run(frame, run_name)]


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
