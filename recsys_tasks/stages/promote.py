"""Promote or keep: act on the evaluation's decision in the registry."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from recsys_tasks.stages.context import RunContext
from recsys_tasks.tracking import mirror_champion

log = logging.getLogger(__name__)


def run(ctx: RunContext, decision: Mapping[str, Any]) -> dict[str, Any]:
    """Make the challenger champion from the run's as-of date on (for a backfill: until the next period).

    ``current`` in the result says whether it is the champion now (False: a backfill's promotion
    into the past, and the current champion stays).
    """
    from recsys_tasks.registry import get_model
    from recsys_tasks.registry import promote as promote_version

    promote_version(ctx.engine, ctx.schema, decision["challenger"], decision=decision["reason"], as_of=ctx.as_of)
    mirror_champion(ctx.config, ctx.engine)  # MLflow's champion alias follows the registry; never fails the task
    record = get_model(ctx.engine, ctx.schema, decision["challenger"])
    return {
        "champion_from": ctx.as_of.isoformat(), "model_version": decision["challenger"], "previous": decision.get("champion"),
        "current": record is not None and record.status == "champion",
    }


def keep_champion(ctx: RunContext, decision: Mapping[str, Any]) -> dict[str, Any]:
    """Record that the challenger was rejected and the champion stays."""
    from recsys_tasks.registry import get_model, set_status

    record = get_model(ctx.engine, ctx.schema, decision["challenger"])
    if record is not None and record.status != "champion":
        set_status(ctx.engine, ctx.schema, decision["challenger"], "rejected", decision=decision["reason"])
    log.info("kept champion %s: %s", decision.get("champion"), decision["reason"])
    return {"champion": decision.get("champion"), "rejected": decision["challenger"]}
