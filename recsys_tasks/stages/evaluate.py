"""Evaluate: score challenger, champion and most-popular on the run's holdout, store the metrics, decide."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from recsys_tasks.stages.context import RunContext

log = logging.getLogger(__name__)



def run(
    ctx: RunContext, snapshot: str, challenger_version: str, *, force_promote: bool = False, full_retrain: bool = False
) -> dict[str, Any]:
    """Score challenger, champion and most-popular on the run's holdout; store; decide.

    Every model is verified against its registry checksum before it is scored, and every score is
    checked finite; only then is anything stored. With ``full_retrain`` a champion whose files fail
    verification is left out, so the new model is judged against most-popular alone (the documented
    way out of a corrupted champion).
    """
    from recsys_tasks.data.sequences import ItemVocab, build_sequences, temporal_split
    from recsys_tasks.data.snapshot import read_snapshot
    from recsys_tasks.modeling.evaluation import build_holdout, decide, score, store_evaluation, summary_line
    from recsys_tasks.registry import get_model, set_metrics
    from recsys_tasks.serving.recommender import PopularityRecommender, load_recommender

    cfg = ctx.config.evaluation
    events, items = read_snapshot(Path(snapshot))
    split = temporal_split(events, ctx.cutoff, items_per_user=ctx.config.window.holdout_items_per_user)
    holdout = build_holdout(split)
    log.info("holdout: %d users with events after the cutoff %s", len(holdout), ctx.cutoff)
    challenger = get_model(ctx.engine, ctx.schema, challenger_version)
    if challenger is None:
        raise ValueError(f"challenger {challenger_version} is not registered; rerun the train task")
    champion, unusable = _champion_to_compare(ctx, challenger_version, full_retrain=full_retrain)
    device = ctx.config.train.device
    ch_rec = load_recommender(challenger.verified_dir(), device=device)
    results: dict[str, Any] = {"challenger": score(ch_rec, holdout, k=cfg.k)}
    # Baseline: most popular in the last 7 days before the cutoff, over the challenger's catalogue.
    vocab = ItemVocab(ch_rec.vocab.item_ids)
    popularity = PopularityRecommender.fit(build_sequences(split.train_events, vocab), vocab, recent_seconds=7 * 86400)
    results["baseline"] = score(popularity, holdout, k=cfg.k)
    if champion is not None:
        results["champion"] = score(load_recommender(champion.verified_dir(), device=device), holdout, k=cfg.k)
    versions = {"challenger": challenger_version, "baseline": "most_popular", "champion": champion.model_version if champion else "-"}
    for role, metrics in results.items():
        store_evaluation(ctx.engine, ctx.schema, run_id=ctx.run_id, as_of=ctx.as_of, model_version=versions[role], role=role, metrics=metrics)
        log.info("%s", summary_line(role, versions[role], metrics, cfg.k))
    set_metrics(ctx.engine, ctx.schema, challenger_version, results["challenger"]["all"], len(holdout))
    decision = decide(
        cfg=cfg,
        challenger=challenger_version,
        challenger_metrics=results["challenger"]["all"],
        baseline_metrics=results["baseline"]["all"],
        champion=champion,
        champion_metrics=results.get("champion", {}).get("all") if champion else None,
        challenger_data_end=challenger.data_end,
        holdout_users=len(holdout),
        force=force_promote,
        challenger_segments=results["challenger"],
        champion_segments=results.get("champion"),
    )
    if unusable:
        decision.reason = f"{decision.reason} (the champion was left out: {unusable})"
    log.info("decision: %s (%s)", decision.outcome, decision.reason)
    report = write_run_report(ctx, decision.to_dict(), results)
    log.info("run report: file://%s", report)
    return {
        "decision": decision.to_dict(),
        "metrics": {r: m["all"] for r, m in results.items()},
        "holdout_users": len(holdout),
        "report": str(report),
    }


def _champion_to_compare(ctx: RunContext, challenger_version: str, *, full_retrain: bool) -> tuple[Any, str | None]:
    """The champion the challenger must beat, or None; with the reason when a broken one is left out."""
    from recsys_tasks.registry import ModelIntegrityError, get_champion

    champion = get_champion(ctx.engine, ctx.schema)
    if champion is None or champion.model_version == challenger_version:
        return None, None  # no champion yet, or a rerun after promotion: nothing else to compare against
    if full_retrain:
        try:
            champion.verified_dir()
        except ModelIntegrityError as exc:
            log.error("full_retrain: the champion cannot be used and is left out of the comparison: %s", exc)
            return None, f"{champion.model_version} failed verification"
    return champion, None


def write_run_report(ctx: RunContext, decision: Mapping[str, Any], results: Mapping[str, Any]) -> Path:
    """The run's HTML report (metrics, training curve, metric history) next to its artifacts."""
    from recsys_tasks.report import write_report
    from recsys_tasks.sqlfiles import statement

    history_file = ctx.run_dir / "train_history.json"
    training = json.loads(history_file.read_text(encoding="utf-8")) if history_file.is_file() else []
    with ctx.engine.connect() as conn:
        rows = conn.execute(
            statement("select_metric_history", schema=ctx.schema),
            {"metric": ctx.config.evaluation.primary_metric, "since": (ctx.as_of - timedelta(days=60)).isoformat()},
        ).all()
    return write_report(
        ctx.run_dir / "report.html",
        run_id=ctx.run_id,
        as_of=ctx.as_of.isoformat(),
        decision=decision,
        metrics=results,
        training_history=training,
        metric_history=[dict(r._mapping) for r in rows],
        primary_metric=ctx.config.evaluation.primary_metric,
    )
