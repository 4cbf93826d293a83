"""Publish: the champion's per-user top-K for the run's as-of date, atomically.

In the DAG: ``plan`` (the shards of ``publish.shards``), ``stage_shard`` mapped over them, ``merge``.
With one shard the one ``stage_shard`` task publishes as ``run`` does (rank, stage, swap), and
``merge`` only reports it, so ``publish.shards: 1`` costs what a single publish task always did.
"""

from __future__ import annotations

import logging
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
    from recsys_tasks.data.snapshot import read_frame

    champion = _champion(ctx)
    path = ctx.store.path(snapshot)
    items = read_frame(path / "items.parquet")
    return _publish_whole(ctx, champion, path / "events.parquet", items, top_k=top_k, allow_shrink=allow_shrink)


def _champion(ctx: RunContext) -> Any:
    """The champion of the run's as-of date (point in time), or ``NothingToPublish``."""
    from recsys_tasks.data.warehouse import ensure_output_schema
    from recsys_tasks.registry import champion_at

    ensure_output_schema(ctx.engine, ctx.schema)
    champion = champion_at(ctx.engine, ctx.schema, ctx.as_of)
    if champion is None:
        raise NothingToPublish(
            f"there is no champion for as-of {ctx.as_of} (no challenger up to that date beat most-popular); nothing "
            "was published. Inspect the evaluations table, or rerun with force_promote=true to accept it."
        )
    return champion


def _ranked_in_chunks(ctx: RunContext, record: Any, events_path: Any, items: Any, *, top_k: int | None, activity: Any) -> tuple:
    """(rows, spec, k): the lists of the users with item events in the events file (or dataset)
    ``events_path``, read in chunks of whole users so memory is bounded by ``window.chunk_rows``, and
    what they must satisfy.

    The rules come once from the item counts of all users (``activity``); each chunk's users are
    ranked as the rows stream out, and their entries are added to the spec before their first row,
    so the checks of ``publish_safety.checked_rows`` see every user's entry when they need it.
    """
    import pandas as pd

    from recsys_tasks.data.publish_safety import ListSpec
    from recsys_tasks.data.user_chunks import user_chunks
    from recsys_tasks.modeling.hardware import apply_threads
    from recsys_tasks.serving.eligibility import list_spec
    from recsys_tasks.serving.ranking import champion_rows, prepare_rules
    from recsys_tasks.serving.recommender import load_recommender

    apply_threads(ctx.config.train.num_threads, what="scoring")
    recommender = load_recommender(record.verified_dir(ctx.store), device=ctx.config.train.device)
    cfg, vocab = ctx.config.publish, recommender.vocab
    k = min(top_k or cfg.top_k, len(vocab) - 1)
    no_events = pd.DataFrame({c: pd.Series(dtype="string") for c in ("user_id", "item_id", "event_type", "query")})
    rules = prepare_rules(
        cfg, vocab=vocab, events=no_events, items=items, as_of=ctx.as_of, item_vectors=recommender.item_vectors(),
        activity=activity,
    )
    spec = ListSpec(top_k=k, catalogue=frozenset(items["item_id"].astype(str)), need={}, eligible={})

    def rows() -> Any:
        for chunk in user_chunks(events_path, chunk_rows=ctx.config.window.chunk_rows):
            users = sorted(set(chunk.loc[chunk["item_id"].notna(), "user_id"].astype(str)))
            part = list_spec(vocab, chunk, items, users=users, config=cfg, k=k)
            spec.need.update(part.need)
            spec.eligible.update(part.eligible)
            yield from champion_rows(
                recommender, chunk, items, users=users, config=cfg, k=k, as_of=ctx.as_of, run_id=ctx.run_id,
                model_version=record.model_version, activity=activity, rules=rules,
            )

    return rows(), spec, k


def _publish_whole(ctx: RunContext, record: Any, events: Any, items: Any, *, top_k: int | None, allow_shrink: bool | None) -> dict:
    """Rank everyone in the events file (or dataset) ``events`` with ``record``, stage and swap in one go.

    One streaming pass counts the item activity over all users; then the users are ranked chunk by
    chunk, so memory is bounded by ``window.chunk_rows`` as in a shard task.
    """
    from recsys_tasks.data.publication import write_publication
    from recsys_tasks.data.publish_safety import PublishPolicy
    from recsys_tasks.data.shards import item_activity

    activity = item_activity(events, as_of=ctx.as_of, trending_days=ctx.config.publish.trending_days)
    rows, spec, k = _ranked_in_chunks(ctx, record, events, items, top_k=top_k, activity=activity)
    result = write_publication(
        ctx.engine, ctx.schema, rows, as_of=ctx.as_of, run_id=ctx.run_id, model_version=record.model_version, top_k=k,
        spec=spec, policy=PublishPolicy.from_config(ctx.config.publish, allow_shrink=allow_shrink),
    )
    return {
        "as_of": ctx.as_of.isoformat(), "model_version": record.model_version, "users": result.users, "rows": result.rows,
        "lock_waits": result.lock_waits,
    }


@names_storage_failures("publish")
def plan(ctx: RunContext, snapshot: str) -> list[dict[str, Any]]:
    """The shards of tonight's publication (``publish.shards``), one dict per mapped ``publish_shard`` task.

    With more than one shard the snapshot's events are split by user hash into the run directory,
    with the item counts every shard's rules need; all shards rank with the same champion.
    """
    from recsys_tasks.data.shards import split_snapshot

    champion = _champion(ctx)
    shards, source = ctx.config.publish.shards, ctx.store.path(snapshot)
    common = {"shards": shards, "model_version": champion.model_version, "items": ctx.store.uri(source / "items.parquet")}
    if shards == 1:
        return [{**common, "shard": 0, "events": ctx.store.uri(source / "events.parquet"), "activity": None}]
    out = ctx.run_dir / "publish"
    files = split_snapshot(ctx.store, source, out, shards=shards, as_of=ctx.as_of, trending_days=ctx.config.publish.trending_days)
    activity = ctx.store.uri(out / "item_activity.parquet")
    return [{**common, "shard": i, "events": f, "activity": activity} for i, f in enumerate(files)]


@names_storage_failures("publish")
def stage_shard(
    ctx: RunContext, shard: dict[str, Any], *, top_k: int | None = None, allow_shrink: bool | None = None
) -> dict[str, Any]:
    """Rank one shard's users with the planned champion and load them into the shard's staging table.

    The only shard of ``publish.shards: 1`` publishes outright (``"published"`` in the result).
    """
    from recsys_tasks.data.sharded_publication import stage_shard as stage
    from recsys_tasks.data.snapshot import read_frame
    from recsys_tasks.registry import RegistryError, get_model

    record = get_model(ctx.engine, ctx.schema, shard["model_version"])
    if record is None:
        raise RegistryError(f"the planned champion {shard['model_version']} is not in the registry; rerun the publish tasks")
    items = read_frame(ctx.store.path(shard["items"]))
    if int(shard["shards"]) == 1:
        events = ctx.store.path(shard["events"])
        return {"published": _publish_whole(ctx, record, events, items, top_k=top_k, allow_shrink=allow_shrink)}
    activity = read_frame(ctx.store.path(shard["activity"]))
    rows, spec, k = _ranked_in_chunks(ctx, record, ctx.store.path(shard["events"]), items, top_k=top_k, activity=activity)
    staged = stage(
        ctx.engine, ctx.schema, rows, as_of=ctx.as_of, run_id=ctx.run_id, shard=int(shard["shard"]),
        shards=int(shard["shards"]), top_k=k, model_version=record.model_version, spec=spec,
    )
    return staged.to_dict()


def merge(ctx: RunContext, staged: list[dict[str, Any]], *, allow_shrink: bool | None = None) -> dict[str, Any]:
    """Check the staged shards and swap them in as one publication of ``ctx.as_of``, atomically."""
    from recsys_tasks.data.publish_safety import PublishPolicy
    from recsys_tasks.data.sharded_publication import StagedShard, merge_shards

    if len(staged) == 1 and "published" in staged[0]:  # one shard: it published already
        return {**staged[0]["published"], "shards": 1}
    result = merge_shards(
        ctx.engine, ctx.schema, [StagedShard(**s) for s in staged], as_of=ctx.as_of, run_id=ctx.run_id,
        policy=PublishPolicy.from_config(ctx.config.publish, allow_shrink=allow_shrink),
    )
    return {
        "as_of": ctx.as_of.isoformat(), "model_version": result.model_version, "users": result.users, "rows": result.rows,
        "lock_waits": result.lock_waits, "shards": len(staged),
    }
