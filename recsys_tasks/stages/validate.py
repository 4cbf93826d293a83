"""Validate: clean and check the snapshot in chunks of whole users, record the outcome; stop on a blocker."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recsys_tasks.stages.context import RunContext, names_storage_failures

if TYPE_CHECKING:
    import pandas as pd
    from upath import UPath

    from recsys_tasks.validation import ValidationReport

log = logging.getLogger(__name__)


@names_storage_failures("validate")
def run(ctx: RunContext, snapshot: str) -> dict[str, Any]:
    """Clean and validate the snapshot chunk by chunk; persist the results; raise on a blocking failure."""
    from recsys_tasks.validation import clean_and_validate, previous_volumes

    settings = ctx.config.validation
    clean_dir = ctx.run_dir / "clean"
    previous = previous_volumes(ctx.engine, ctx.schema, as_of=ctx.as_of, limit=settings.volume_history_runs)
    try:
        # The cleaned events are written while they are checked; the file appears only if the run goes on.
        with ctx.store.writing(clean_dir / "events.parquet") as events_file:
            result = clean_and_validate(
                ctx.store.path(snapshot),
                events_file,
                interval_start=ctx.interval_start,
                interval_end=ctx.interval_end,
                history_start=ctx.history_start,
                config=settings,
                previous_volumes=previous,
                docs_dir=ctx.work_dir("data_docs"),
                run_id=ctx.run_id,
                chunk_rows=ctx.config.window.chunk_rows,
            )
            docs = _record(ctx, result.report, result.interval_events)
            if result.write_error is not None:
                raise result.write_error
    except BaseException:
        _remove_if_empty(ctx, clean_dir)  # nothing downstream may read a failed run's data
        raise
    _write_items(ctx, clean_dir, result.items)
    log.info(
        "validation passed: %d events (%d in the interval), %d items; cleaning: %s",
        result.events, result.interval_events, len(result.items), result.cleaning_counts,
    )
    return {
        "snapshot": ctx.store.uri(clean_dir),
        "interval_events": result.interval_events,
        "warnings": [w.describe() for w in result.report.warnings],
        "cleaning": result.cleaning_counts,
        "docs": docs,
    }


def _record(ctx: RunContext, report: ValidationReport, interval_events: int) -> str | None:
    """Publish the Data Docs, store the outcomes, log the warnings; raise if a failure blocks the run."""
    from recsys_tasks.validation import raise_for_blocking, store_report

    report.docs_path = docs = _publish_docs(ctx, report.docs_path)
    store_report(ctx.engine, ctx.schema, report, as_of=ctx.as_of, interval_events=interval_events)
    if docs:
        log.info("Great Expectations Data Docs for this run: %s", docs)
    for warning in report.warnings:
        log.warning("validation warning: %s", warning.describe())
    if ctx.config.validation.enabled:
        raise_for_blocking(report)
    elif not report.success:
        log.warning(
            "validation.enabled is false, so these failures do not stop the run: %s", report.summary()
        )
    return docs


def _publish_docs(ctx: RunContext, index: Path | None) -> str | None:
    """The Data Docs site built on this worker, put into the run directory of the store; its index's URI."""
    if index is None:
        return None
    target = ctx.run_dir / "data_docs"
    if not ctx.store.local:
        ctx.store.put_tree(Path(index).parent, target)
    return ctx.store.uri(target / "index.html")


def _write_items(ctx: RunContext, clean_dir: UPath, items: pd.DataFrame) -> None:
    """The cleaned catalogue next to the cleaned events: the snapshot later stages read."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from recsys_tasks.data.snapshot import ITEMS_SCHEMA

    table = pa.Table.from_pandas(items, schema=ITEMS_SCHEMA, preserve_index=False)
    with ctx.store.writing(clean_dir / "items.parquet") as tmp:
        pq.write_table(table, tmp)


def _remove_if_empty(ctx: RunContext, clean_dir: UPath) -> None:
    """Remove the run's clean directory if this attempt created it and left nothing in it."""
    if ctx.store.local:
        with contextlib.suppress(OSError):  # not there, or holds an earlier attempt's files
            Path(clean_dir).rmdir()
