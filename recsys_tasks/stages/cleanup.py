"""Cleanup: the last task of a run deletes what the ``retention`` config says has expired.

It never fails the run: a failing step is logged and reported in the task's result, and the next
night's cleanup tries again (rules and what is always kept: :mod:`recsys_tasks.retention`).
"""

from __future__ import annotations

import logging
from typing import Any

from recsys_tasks.stages.context import RunContext

log = logging.getLogger(__name__)


def run(ctx: RunContext, *, dry_run: bool | None = None) -> dict[str, Any]:
    """Delete expired partitions, run directories and model directories as of ``ctx.as_of``."""
    from recsys_tasks.data.warehouse import ensure_output_schema
    from recsys_tasks.retention import cleanup

    try:
        ensure_output_schema(ctx.engine, ctx.schema)
        report = cleanup(ctx.engine, ctx.config, as_of=ctx.as_of, dag_id=ctx.dag_id, dry_run=dry_run)
    except Exception as exc:  # retention must never fail the night's run
        log.exception("retention could not run; nothing more was deleted, the next cleanup retries")
        return {"as_of": ctx.as_of.isoformat(), "errors": [f"{type(exc).__name__}: {exc}"]}
    return report.to_dict()
