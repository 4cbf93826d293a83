"""Validate one interval snapshot: schema checks, the two GX suites, the computed checks, the Data Docs."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

import pandas as pd

from recsys_tasks.config import ValidationConfig
from recsys_tasks.timeutil import utc
from recsys_tasks.validation import suites
from recsys_tasks.validation.checks import (
    computed_event_checks,
    duplicate_rows_outcome,
    padded_ids_outcomes,
    schema_outcomes,
)
from recsys_tasks.validation.contract import (
    EVENT_DTYPES,
    EVENT_ID_COLUMNS,
    EVENTS_SUITE,
    ITEM_DTYPES,
    ITEM_ID_COLUMNS,
    ITEMS_SUITE,
)
from recsys_tasks.validation.outcomes import Severity, ValidationReport

log = logging.getLogger(__name__)


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
    gx = suites.import_gx()
    context = suites.make_context(gx, docs_dir)
    severity = Severity.from_config(config)

    # A missing or mistyped column skips the checks that read it; its own outcome names it.
    results, event_ok = schema_outcomes(events, EVENT_DTYPES, "events", EVENTS_SUITE, severity)
    item_results, item_ok = schema_outcomes(items, ITEM_DTYPES, "items", ITEMS_SUITE, severity)
    results += item_results

    event_checks = suites.event_checks(gx, event_ok, start, end, hist, config, previous_volumes)
    item_checks = suites.item_checks(gx, item_ok)
    for suite_name, frame, checks in (
        (EVENTS_SUITE, events, event_checks),
        (ITEMS_SUITE, items, item_checks),
    ):
        # GX gets only the columns its checks read: every row condition filters the whole batch, and
        # free-text columns (query, titles) would make each filter copy far more than it needs.
        read = sorted({col for check in checks for col in check.columns}, key=list(frame.columns).index)
        results += suites.run_suite(gx, context, suite_name, frame[read], checks, run_id, severity)

    results += computed_event_checks(events, items, event_ok, item_ok, start, end, config, severity)
    results.append(duplicate_rows_outcome(len(events), event_duplicates_dropped, severity))
    results += padded_ids_outcomes(events, EVENT_ID_COLUMNS, event_ok, "events", EVENTS_SUITE, severity)
    results += padded_ids_outcomes(items, ITEM_ID_COLUMNS, item_ok, "items", ITEMS_SUITE, severity)

    docs_path = suites.build_docs(context, docs_dir) if docs_dir is not None else None
    report = ValidationReport(
        run_id=run_id, results=results, cleaning_counts=dict(cleaning_counts or {}), docs_path=docs_path
    )
    (log.warning if (report.blocking_failures or report.warnings) else log.info)("%s", report.summary())
    return report
