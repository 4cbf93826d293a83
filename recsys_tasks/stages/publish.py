"""Publish: the champion's per-user top-K for the run's as-of date, atomically."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from recsys_tasks.stages.context import NothingToPublish, RunContext, names_storage_failures

log = logging.getLogger(__name__)


@names_storage_failures("publish")
def run(ctx: RunContext, snapshot: str, *, top_k: int | None = None, allow_shrink: bool | None = None) -> dict[str, Any]:
    """Publish the champion's top-K for every user with item events in the snapshot, as of ``ctx.as_of``.

    Refused, with the previous publication left as it was, when the lists look broken or the
    publication shrank by more than ``publish.max_shrink_share`` (``allow_shrink`` overrides the
    config's ``publish.allow_shrink`` for this run); see ``data.publish_safety``.
    """
    from recsys_tasks.data.publication import write_publication
    from recsys_tasks.data.publish_safety import PublishPolicy
    from recsys_tasks.data.snapshot import read_snapshot
    from recsys_tasks.data.warehouse import ensure_output_schema
    from recsys_tasks.registry import champion_at
    from recsys_tasks.serving.eligibility import list_spec
    from recsys_tasks.serving.ranking import champion_rows
    from recsys_tasks.serving.recommender import load_recommender

    ensure_output_schema(ctx.engine, ctx.schema)
    champion = champion_at(ctx.engine, ctx.schema, ctx.as_of)  # point in time: the champion of this date
    if champion is None:
        raise NothingToPublish(
            f"there is no champion for as-of {ctx.as_of} (no challenger up to that date beat most-popular); nothing "
            "was published. Inspect the evaluations table, or rerun with force_promote=true to accept it."
        )
    events, items = read_snapshot(Path(snapshot))
    recommender = load_recommender(champion.verified_dir(), device=ctx.config.train.device)
    users = sorted(set(events.loc[events["item_id"].notna(), "user_id"].astype(str)))
    k = min(top_k or ctx.config.publish.top_k, len(recommender.vocab) - 1)
    rows = champion_rows(
        recommender, events, items, users=users, config=ctx.config.publish, k=k, as_of=ctx.as_of,
        run_id=ctx.run_id, model_version=champion.model_version,
    )
    result = write_publication(
        ctx.engine, ctx.schema, rows, as_of=ctx.as_of, run_id=ctx.run_id, model_version=champion.model_version, top_k=k,
        spec=list_spec(recommender.vocab, events, items, users=users, config=ctx.config.publish, k=k),
        policy=PublishPolicy.from_config(ctx.config.publish, allow_shrink=allow_shrink),
    )
    return {
        "as_of": ctx.as_of.isoformat(), "model_version": champion.model_version, "users": result.users, "rows": result.rows,
        "lock_waits": result.lock_waits,
    }
