"""Extract: stream the run's events (interval + history) and the catalogue into its snapshot."""

from __future__ import annotations

import logging
from typing import Any

from recsys_tasks.stages.context import RunContext, names_storage_failures

log = logging.getLogger(__name__)


@names_storage_failures("extract")
def run(ctx: RunContext) -> dict[str, Any]:
    """Stream ``[history_start, interval_end)`` events and the catalogue into the run's snapshot."""
    from recsys_tasks.data.snapshot import extract_interval
    from recsys_tasks.data.warehouse import ensure_output_schema

    ensure_output_schema(ctx.engine, ctx.schema)
    log.info(
        "extracting events of [%s, %s) (interval [%s, %s) plus %d days of history)",
        ctx.history_start, ctx.interval_end, ctx.interval_start, ctx.interval_end, ctx.config.window.history_days,
    )
    snap = extract_interval(  # read through the source connection; only the snapshot files are written
        ctx.source_engine, ctx.config.warehouse, start=ctx.history_start, end=ctx.interval_end,
        out_dir=ctx.run_dir / "snapshot", store=ctx.store,
    )
    return {"snapshot": ctx.store.uri(snap.path), "events": snap.events, "items": snap.items}
