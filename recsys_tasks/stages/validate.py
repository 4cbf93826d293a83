"""Validate: clean the snapshot, run the Great Expectations suites, record the outcome; stop on blocking failures."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from recsys_tasks.stages.context import RunContext

log = logging.getLogger(__name__)



def run(ctx: RunContext, snapshot: str) -> dict[str, Any]:
    """Clean and validate the snapshot; persist the results; raise on a blocking failure."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from recsys_tasks.data.snapshot import EVENTS_SCHEMA, ITEMS_SCHEMA, read_snapshot
    from recsys_tasks.sqlfiles import statement
    from recsys_tasks.timeutil import now_iso
    from recsys_tasks.validation import clean_events, clean_items, raise_for_blocking, validate_snapshot

    events, items = read_snapshot(Path(snapshot))
    events, event_counts = clean_events(events)
    items, item_counts = clean_items(items)
    counts = {**{f"events.{k}": v for k, v in event_counts.items()}, **{f"items.{k}": v for k, v in item_counts.items()}}
    with ctx.engine.connect() as conn:
        rows = conn.execute(
            statement("select_previous_volumes", schema=ctx.schema),
            {"as_of": ctx.as_of.isoformat(), "limit": ctx.config.validation.volume_history_runs},
        ).all()
    previous = [int(r.interval_events) for r in reversed(rows)]  # oldest first
    report = validate_snapshot(
        events,
        items,
        interval_start=ctx.interval_start,
        interval_end=ctx.interval_end,
        history_start=ctx.history_start,
        config=ctx.config.validation,
        previous_volumes=previous,
        docs_dir=ctx.run_dir / "data_docs",
        run_id=ctx.run_id,
        cleaning_counts=counts,
        event_duplicates_dropped=event_counts["exact_duplicates_dropped"],
    )
    interval_events = int(((events["event_ts"] >= ctx.interval_start) & (events["event_ts"] < ctx.interval_end)).sum()) if "event_ts" in events else 0
    stamp = now_iso()
    result_rows = [{**row, "run_id": ctx.run_id, "as_of": ctx.as_of.isoformat(), "created_at": stamp} for row in report.rows()]
    with ctx.engine.begin() as conn:
        conn.execute(statement("delete_validation_results", schema=ctx.schema), {"run_id": ctx.run_id})
        if result_rows:
            conn.execute(statement("insert_validation_result", schema=ctx.schema), result_rows)
        conn.execute(
            statement("upsert_validation_run", schema=ctx.schema),
            {
                "run_id": ctx.run_id,
                "as_of": ctx.as_of.isoformat(),
                "interval_events": interval_events,
                "success": report.success,
                "docs_uri": str(report.docs_path) if report.docs_path else None,
                "created_at": stamp,
            },
        )
    if report.docs_path:
        log.info("Great Expectations Data Docs for this run: file://%s", Path(report.docs_path).resolve())
    for warning in report.warnings:
        log.warning("validation warning: %s", warning.describe())
    if ctx.config.validation.enabled:
        raise_for_blocking(report)
    elif not report.success:
        log.warning("validation.enabled is false, so these failures do not stop the run: %s", report.summary())
    clean_dir = ctx.run_dir / "clean"
    clean_dir.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(events, schema=EVENTS_SCHEMA, preserve_index=False), clean_dir / "events.parquet")
    pq.write_table(pa.Table.from_pandas(items, schema=ITEMS_SCHEMA, preserve_index=False), clean_dir / "items.parquet")
    log.info("validation passed: %d events (%d in the interval), %d items; cleaning: %s", len(events), interval_events, len(items), counts)
    return {
        "snapshot": str(clean_dir),
        "interval_events": interval_events,
        "warnings": [w.describe() for w in report.warnings],
        "cleaning": counts,
        "docs": str(report.docs_path) if report.docs_path else None,
    }
