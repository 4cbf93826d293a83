"""Validate: clean the snapshot, run the Great Expectations suites, record the outcome; stop if one blocks."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recsys_tasks.stages.context import RunContext, names_storage_failures

if TYPE_CHECKING:
    import pandas as pd
    from upath import UPath

log = logging.getLogger(__name__)


@names_storage_failures("validate")
def run(ctx: RunContext, snapshot: str) -> dict[str, Any]:
    """Clean and validate the snapshot; persist the results; raise on a blocking failure."""
    from recsys_tasks.data.snapshot import read_snapshot
    from recsys_tasks.validation import (
        clean_snapshot,
        interval_volume,
        previous_volumes,
        raise_for_blocking,
        store_report,
        validate_snapshot,
    )

    settings = ctx.config.validation
    clean = clean_snapshot(*read_snapshot(ctx.store.path(snapshot)))
    previous = previous_volumes(ctx.engine, ctx.schema, as_of=ctx.as_of, limit=settings.volume_history_runs)
    report = validate_snapshot(
        clean.events,
        clean.items,
        interval_start=ctx.interval_start,
        interval_end=ctx.interval_end,
        history_start=ctx.history_start,
        config=settings,
        previous_volumes=previous,
        docs_dir=ctx.work_dir("data_docs"),
        run_id=ctx.run_id,
        cleaning_counts=clean.counts,
        event_duplicates_dropped=clean.event_duplicates_dropped,
    )
    interval_events = interval_volume(clean.events, ctx.interval_start, ctx.interval_end)
    report.docs_path = docs = _publish_docs(ctx, report.docs_path)
    store_report(ctx.engine, ctx.schema, report, as_of=ctx.as_of, interval_events=interval_events)
    if docs:
        log.info("Great Expectations Data Docs for this run: %s", docs)
    for warning in report.warnings:
        log.warning("validation warning: %s", warning.describe())
    if settings.enabled:
        raise_for_blocking(report)
    elif not report.success:
        log.warning(
            "validation.enabled is false, so these failures do not stop the run: %s", report.summary()
        )

    clean_dir = _write_clean_snapshot(ctx, clean.events, clean.items)
    log.info(
        "validation passed: %d events (%d in the interval), %d items; cleaning: %s",
        len(clean.events), interval_events, len(clean.items), clean.counts,
    )
    return {
        "snapshot": ctx.store.uri(clean_dir),
        "interval_events": interval_events,
        "warnings": [w.describe() for w in report.warnings],
        "cleaning": clean.counts,
        "docs": docs,
    }


def _publish_docs(ctx: RunContext, index: Path | None) -> str | None:
    """The Data Docs site built on this worker, put into the run directory of the store; its index's URI."""
    if index is None:
        return None
    target = ctx.run_dir / "data_docs"
    if not ctx.store.local:
        ctx.store.put_tree(Path(index).parent, target)
    return ctx.store.uri(target / "index.html")


def _write_clean_snapshot(ctx: RunContext, events: pd.DataFrame, items: pd.DataFrame) -> UPath:
    """The cleaned frames as a snapshot directory, which later stages read instead of the extracted one."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from recsys_tasks.data.snapshot import EVENTS_SCHEMA, ITEMS_SCHEMA

    clean_dir = ctx.run_dir / "clean"
    for frame, schema, name in ((events, EVENTS_SCHEMA, "events"), (items, ITEMS_SCHEMA, "items")):
        table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
        with ctx.store.writing(clean_dir / f"{name}.parquet") as tmp:
            pq.write_table(table, tmp)
    return clean_dir
