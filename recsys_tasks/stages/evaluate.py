"""Evaluate: score challenger, champion and most-popular on the run's holdout, store the metrics, decide."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from recsys_tasks.stages.context import RunContext, names_storage_failures
from recsys_tasks.tracking import mirror_evaluation

if TYPE_CHECKING:
    from upath import UPath

log = logging.getLogger(__name__)



@names_storage_failures("evaluate")
def run(
    ctx: RunContext, snapshot: str, challenger_version: str, *, force_promote: bool = False, full_retrain: bool = False
) -> dict[str, Any]:
    """Score challenger, champion and most-popular on the run's holdout; compare; store; decide.

    The champion is the one of the day before the run's as-of date (the registry's timeline), so a
    backfill is judged against the model that was champion then. Every model is checked to be
    trained before the holdout starts and verified against its registry checksum before it is
    scored, and every score is checked finite; only then is anything stored. With ``full_retrain``
    a champion whose files fail verification is left out, so the new model is judged against
    most-popular alone (the documented way out of a corrupted champion).
    """
    from recsys_tasks.data.event_window import read_event_window
    from recsys_tasks.modeling.evaluation import check_outside_training, holdout_of, score
    from recsys_tasks.modeling.hardware import release_memory
    from recsys_tasks.modeling.promotion import compare, decide
    from recsys_tasks.registry import get_model
    from recsys_tasks.serving.recommender import load_recommender

    cfg = ctx.config.evaluation
    window = read_event_window(
        ctx.store.path(snapshot) / "events.parquet", cutoff=ctx.cutoff,
        items_per_user=ctx.config.window.holdout_items_per_user, chunk_rows=ctx.config.window.chunk_rows,
    )
    holdout = holdout_of(window)
    log.info("holdout: %d users with events after the cutoff %s", len(holdout), ctx.cutoff)
    challenger = get_model(ctx.engine, ctx.schema, challenger_version)
    if challenger is None:
        raise ValueError(f"challenger {challenger_version} is not registered; rerun the train task")
    champion, unusable = _champion_to_compare(ctx, challenger_version, full_retrain=full_retrain)
    for role, model in (("challenger", challenger), ("champion", champion)):
        if model is not None:
            check_outside_training(model, ctx.cutoff, role=role)
    device = ctx.config.train.device
    ch_rec = load_recommender(challenger.verified_dir(ctx.store), device=device)
    # Counted now, so that only the holdout users' sequences stay in memory while models score.
    popularity = _most_popular(window, ch_rec)
    del window
    release_memory()
    batch = ctx.config.publish.batch_users  # users per scoring batch: what bounds this task's peak
    results: dict[str, Any] = {"challenger": score(ch_rec, holdout, k=cfg.k, batch_users=batch, num_threads=ctx.config.train.num_threads)}
    results["baseline"] = score(popularity, holdout, k=cfg.k, batch_users=batch)
    if champion is not None:
        champion_rec = load_recommender(champion.verified_dir(ctx.store), device=device)
        results["champion"] = score(champion_rec, holdout, k=cfg.k, batch_users=batch)
    versions = {"challenger": challenger_version, "baseline": "most_popular", "champion": champion.model_version if champion else "-"}
    comparisons = {
        role: compare(results["challenger"], results[role], reference_version=versions[role], reference_role=role, cfg=cfg)
        for role in ("champion", "baseline")
        if role in results
    }
    _store(ctx, results, versions, list(comparisons.values()), holdout_users=len(holdout))
    decision = decide(
        cfg=cfg,
        challenger=challenger_version,
        challenger_metrics=results["challenger"]["all"],
        baseline_metrics=results["baseline"]["all"],
        champion=champion,
        champion_metrics=results.get("champion", {}).get("all") if champion else None,
        challenger_data_end=challenger.data_end,
        holdout_users=len(holdout),
        vs_baseline=comparisons["baseline"],
        vs_champion=comparisons.get("champion"),
        force=force_promote,
        challenger_segments=results["challenger"],
        champion_segments=results.get("champion"),
    )
    if unusable:
        decision.reason = f"{decision.reason} (the champion was left out: {unusable})"
    log.info("decision: %s (%s)", decision.outcome, decision.reason)
    report = write_run_report(ctx, decision.to_dict(), results, [c.to_dict() for c in comparisons.values()])
    log.info("run report: %s", report)
    result = {
        "decision": decision.to_dict(),
        "metrics": {r: m["all"] for r, m in results.items()},
        "holdout_users": len(holdout),
        "report": ctx.store.uri(report),
    }
    mirror_evaluation(ctx, result)  # MLflow, when configured; never fails the task
    return result


def _most_popular(window: Any, challenger: Any) -> Any:
    """The baseline: most popular in the last 7 days before the cutoff, over the challenger's catalogue."""
    from recsys_tasks.data.sequences import ItemVocab
    from recsys_tasks.serving.recommender import PopularityRecommender

    vocab = ItemVocab(challenger.vocab.item_ids)
    counts = window.popularity(vocab, recent_seconds=7 * 86400)
    return PopularityRecommender(kind="popularity", vocab=vocab, popularity=counts)


def _store(
    ctx: RunContext, results: Mapping[str, Any], versions: Mapping[str, str], comparisons: list[Any], *, holdout_users: int
) -> None:
    """Every model's metrics, the challenger's comparisons and its registry metrics (retries replace them)."""
    from recsys_tasks.modeling.evaluation import store_evaluation, summary_line
    from recsys_tasks.modeling.promotion import store_comparisons
    from recsys_tasks.registry import set_metrics

    for role, metrics in results.items():
        store_evaluation(ctx.engine, ctx.schema, run_id=ctx.run_id, as_of=ctx.as_of, model_version=versions[role], role=role, metrics=metrics)
        log.info("%s", summary_line(role, versions[role], metrics, ctx.config.evaluation.k))
    challenger = versions["challenger"]
    store_comparisons(ctx.engine, ctx.schema, run_id=ctx.run_id, as_of=ctx.as_of, challenger=challenger, comparisons=comparisons)
    set_metrics(ctx.engine, ctx.schema, challenger, results["challenger"]["all"], holdout_users)


def _champion_to_compare(ctx: RunContext, challenger_version: str, *, full_retrain: bool) -> tuple[Any, str | None]:
    """The champion the challenger must beat (the one of the day before the as-of date), or None;
    with the reason when a broken one is left out."""
    from recsys_tasks.registry import ModelIntegrityError, champion_before

    champion = champion_before(ctx.engine, ctx.schema, ctx.as_of)
    if champion is None or champion.model_version == challenger_version:
        return None, None  # no champion before this date, or a hand-promoted challenger: nothing else to compare against
    if full_retrain:
        try:
            champion.verified_dir(ctx.store)
        except ModelIntegrityError as exc:
            log.error("full_retrain: the champion cannot be used and is left out of the comparison: %s", exc)
            return None, f"{champion.model_version} failed verification"
    return champion, None


def write_run_report(
    ctx: RunContext, decision: Mapping[str, Any], results: Mapping[str, Any], comparisons: list[dict[str, Any]] | None = None
) -> UPath:
    """The run's HTML report (comparisons, metrics, training curve, metric history) next to its artifacts."""
    from recsys_tasks.report import render_report
    from recsys_tasks.sqlfiles import statement

    history_file = ctx.run_dir / "train_history.json"
    training = json.loads(history_file.read_text(encoding="utf-8")) if history_file.is_file() else []
    with ctx.engine.connect() as conn:
        rows = conn.execute(
            statement("select_metric_history", schema=ctx.schema),
            {"metric": ctx.config.evaluation.primary_metric, "since": (ctx.as_of - timedelta(days=60)).isoformat()},
        ).all()
    target = ctx.run_dir / "report.html"
    html = render_report(
        run_id=ctx.run_id,
        as_of=ctx.as_of.isoformat(),
        decision=decision,
        metrics=results,
        training_history=training,
        metric_history=[dict(r._mapping) for r in rows],
        primary_metric=ctx.config.evaluation.primary_metric,
        comparisons=comparisons or [],
    )
    ctx.store.write_text(target, html)
    return target
