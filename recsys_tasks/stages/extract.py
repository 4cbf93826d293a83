"""Extract: stream the run's events (interval + history) and the catalogue into its snapshot.

In the DAG: ``plan`` (the catalogue, and the user shards of ``warehouse.extract_shards``),
``run_shard`` mapped over the shards (each its own warehouse stream, on any worker), and
``complete`` (every planned shard there exactly once) before validation reads the snapshot. ``run`` does
all of it in one process.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from recsys_tasks.stages.context import RunContext, names_storage_failures

log = logging.getLogger(__name__)


@names_storage_failures("extract")
def run(ctx: RunContext) -> dict[str, Any]:
    """Stream ``[history_start, interval_end)`` events and the catalogue into the run's snapshot."""
    return complete([run_shard(ctx, shard) for shard in plan(ctx)])


@names_storage_failures("extract")
def plan(ctx: RunContext) -> list[dict[str, Any]]:
    """Extract the catalogue; return one dict per event shard (with the snapshot's URI and item count)."""
    from recsys_tasks.data.snapshot import extract_catalogue
    from recsys_tasks.data.warehouse import ensure_output_schema

    ensure_output_schema(ctx.engine, ctx.schema)
    shards = ctx.config.warehouse.extract_shards
    log.info(
        "extracting events of [%s, %s) (interval [%s, %s) plus %d days of history) in %d user shard(s)",
        ctx.history_start, ctx.interval_end, ctx.interval_start, ctx.interval_end, ctx.config.window.history_days, shards,
    )
    snapshot = ctx.run_dir / "snapshot"
    ctx.store.remove(snapshot / "events.parquet")  # a rerun starts afresh (one file, or one part per shard)
    # read through the source connection; only the snapshot files are written
    items = extract_catalogue(ctx.source_engine, ctx.config.warehouse, end=ctx.interval_end, out_dir=snapshot, store=ctx.store)
    return [{"shard": i, "shards": shards, "snapshot": ctx.store.uri(snapshot), "items": items} for i in range(shards)]


@names_storage_failures("extract")
def run_shard(ctx: RunContext, shard: Mapping[str, Any]) -> dict[str, Any]:
    """Stream one user shard's events into the snapshot (its part of ``events.parquet``); ``shard`` as planned,
    with the count of events added."""
    from recsys_tasks.data.snapshot import extract_events

    events = extract_events(
        ctx.source_engine, ctx.config.warehouse, start=ctx.history_start, end=ctx.interval_end,
        out_dir=ctx.run_dir / "snapshot", store=ctx.store, shard=int(shard["shard"]), shards=int(shard["shards"]),
    )
    return {**shard, "events": events}


def complete(extracted: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The snapshot once every one of its planned shards was extracted exactly once; else a clear error."""
    shards = {int(e["shards"]) for e in extracted}
    snapshots = {e["snapshot"] for e in extracted}
    got = sorted(int(e["shard"]) for e in extracted)
    if len(shards) != 1 or len(snapshots) != 1 or got != list(range(min(shards))):
        raise ValueError(
            f"a snapshot needs each of its event shards extracted once, got shards {got} of {sorted(shards)} for "
            f"{sorted(snapshots)}: clear the extract tasks of this run and rerun them."
        )
    return {"snapshot": snapshots.pop(), "events": sum(int(e["events"]) for e in extracted), "items": int(extracted[0]["items"])}
