"""Score challenger, champion and the most-popular baseline on one leakage-free temporal holdout,
and decide whether the challenger is promoted.

The holdout is built once per run from the run's events (``data.temporal_split``): each user's
first item(s) at or after the cutoff, predicted from their events before it. Every model sees the
same users, the same histories and the same (empty) exclusion rule, and is scored against the full
catalogue it knows; a holdout item a model has never seen counts as a miss for that model.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from recsys_tasks.config import EvaluationConfig
from recsys_tasks.data.sequences import TemporalSplit, build_sequences, item_events
from recsys_tasks.modeling.metrics import coverage, ranking_metrics
from recsys_tasks.registry import ModelRecord
from recsys_tasks.serving.ranking import Recommender
from recsys_tasks.sqlfiles import statement
from recsys_tasks.timeutil import now_iso

log = logging.getLogger(__name__)

#: Segments by the number of item events a holdout user had before the cutoff. A fifth segment,
#: ``new_items``, holds the users whose next item had no interaction at all before the cutoff.
SEGMENTS = {"all": (0, None), "new_users": (0, 0), "short_history": (1, 4), "long_history": (5, None)}


@dataclass(frozen=True)
class Holdout:
    """Who is scored and what counts as a hit, shared by every model of a run."""

    user_ids: list[str]
    targets: list[set[str]]
    history_lengths: np.ndarray
    train_events: pd.DataFrame
    #: users at least one of whose holdout items had no interaction before the cutoff
    new_item_users: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.user_ids)


def build_holdout(split: TemporalSplit) -> Holdout:
    """The holdout users of ``split`` with their target items and history lengths."""
    targets = split.holdout.groupby("user_id", sort=True)["item_id"].agg(lambda s: set(map(str, s)))
    users = [str(u) for u in targets.index]
    train_items = item_events(split.train_events)
    counts = train_items.groupby("user_id").size()
    lengths = counts.reindex(users, fill_value=0).to_numpy(dtype=np.int64)
    seen = set(train_items["item_id"].astype(str))
    target_sets = list(targets.to_numpy())
    new_items = np.array([bool(t - seen) for t in target_sets], dtype=bool)
    return Holdout(
        user_ids=users,
        targets=target_sets,
        history_lengths=lengths,
        train_events=split.train_events,
        new_item_users=new_items,
    )


def score(recommender: Recommender, holdout: Holdout, *, k: int, batch_users: int = 4096) -> dict[str, dict[str, float]]:
    """Metrics per segment: ``{"all": {"hr@10": .., "ndcg@10": .., "mrr@10": .., "coverage@10": ..}, ...}``."""
    histories = build_sequences(holdout.train_events, recommender.vocab, users=holdout.user_ids)
    k_eff = min(k, len(recommender.vocab) - 1)
    ranked: list[list[str]] = []
    for _, top, _scores in recommender.recommend(histories, k=k_eff, exclude=None, batch_users=batch_users):
        ranked.extend(recommender.vocab.decode([i for i in row if i > 0]) for row in top)
    out: dict[str, dict[str, float]] = {}
    masks = {}
    for name, (lo, hi) in SEGMENTS.items():
        mask = holdout.history_lengths >= lo
        if hi is not None:
            mask &= holdout.history_lengths <= hi
        masks[name] = mask
    if holdout.new_item_users is not None:
        masks["new_items"] = holdout.new_item_users
    for name, mask in masks.items():
        positions = np.flatnonzero(mask)
        if name != "all" and positions.size == 0:
            continue
        seg_ranked = [ranked[i] for i in positions]
        metrics = ranking_metrics(seg_ranked, [holdout.targets[i] for i in positions], k=k)
        metrics[f"coverage@{k}"] = coverage(seg_ranked, catalogue_size=len(recommender.vocab) - 1, k=k)
        metrics["users"] = float(positions.size)
        out[name] = metrics
    return out


@dataclass
class Decision:
    """Whether tonight's challenger becomes champion, and why (kept in the registry)."""

    outcome: str  # "promote" or "keep"
    reason: str
    challenger: str
    champion: str | None
    primary_metric: str
    values: dict[str, float | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide(
    *,
    cfg: EvaluationConfig,
    challenger: str,
    challenger_metrics: Mapping[str, float],
    baseline_metrics: Mapping[str, float],
    champion: ModelRecord | None,
    champion_metrics: Mapping[str, float] | None,
    challenger_data_end: datetime,
    holdout_users: int,
    force: bool = False,
    challenger_segments: Mapping[str, Mapping[str, float]] | None = None,
    champion_segments: Mapping[str, Mapping[str, float]] | None = None,
) -> Decision:
    """Apply the promotion rule (see README, "Promotion and backfills").

    With per-segment metrics given, the challenger must also not drop the primary metric on
    ``cfg.guard_segment`` by more than ``cfg.guard_tolerance`` (relative) against the champion.
    """
    metric = cfg.primary_metric
    ch = float(challenger_metrics.get(metric, 0.0))
    base = float(baseline_metrics.get(metric, 0.0))
    cur = float(champion_metrics.get(metric, 0.0)) if champion_metrics is not None else None
    values = {"challenger": ch, "champion": cur, "baseline": base}
    champ_id = champion.model_version if champion else None

    def result(outcome: str, reason: str) -> Decision:
        return Decision(outcome, reason, challenger, champ_id, metric, values)

    if force:
        return result("promote", "forced by the run's force_promote param")
    if champion is not None and champion.data_end > challenger_data_end:
        return result(
            "keep",
            f"backfill: champion {champ_id} was trained on newer data (up to {champion.data_end:%Y-%m-%d %H:%M}) "
            f"than this challenger (up to {challenger_data_end:%Y-%m-%d %H:%M})",
        )
    if holdout_users < cfg.min_holdout_users:
        return result("keep", f"holdout too small to judge: {holdout_users} users < evaluation.min_holdout_users={cfg.min_holdout_users}")
    if champion is None or cur is None:
        if ch > base:
            return result("promote", f"first model: {metric} {ch:.4f} beats most-popular {base:.4f}")
        return result("keep", f"first model does not beat most-popular: {metric} {ch:.4f} <= {base:.4f}")
    needed = cur * (1.0 + cfg.min_relative_improvement)
    guard = cfg.guard_segment
    if guard and challenger_segments and champion_segments and guard in challenger_segments and guard in champion_segments:
        g_ch = float(challenger_segments[guard].get(metric, 0.0))
        g_cur = float(champion_segments[guard].get(metric, 0.0))
        values[f"challenger.{guard}"], values[f"champion.{guard}"] = g_ch, g_cur
        if g_ch < g_cur * (1.0 - cfg.guard_tolerance):
            return result(
                "keep",
                f"guard: {metric} on segment {guard} drops from {g_cur:.4f} to {g_ch:.4f}, more than "
                f"evaluation.guard_tolerance={cfg.guard_tolerance:.0%}",
            )
    if ch > base and ch >= needed and ch > cur:
        return result("promote", f"{metric} {ch:.4f} vs champion {cur:.4f} (needed >= {needed:.4f}), most-popular {base:.4f}")
    return result("keep", f"{metric} {ch:.4f} does not beat champion {cur:.4f} by {cfg.min_relative_improvement:.1%} (needed {needed:.4f}); most-popular {base:.4f}")


def store_evaluation(
    engine: sa.Engine,
    schema: str,
    *,
    run_id: str,
    as_of: date,
    model_version: str,
    role: str,
    metrics: Mapping[str, Mapping[str, float]],
) -> int:
    """Write one model's per-segment metrics of a run (replacing a previous attempt's rows)."""
    rows = [
        {
            "run_id": run_id,
            "as_of": as_of.isoformat(),
            "model_version": model_version,
            "role": role,
            "segment": segment,
            "metric": name,
            "value": float(value),
            "users": int(values.get("users", 0)),
            "created_at": now_iso(),
        }
        for segment, values in metrics.items()
        for name, value in values.items()
        if name != "users"
    ]
    with engine.begin() as conn:
        conn.execute(
            statement("delete_evaluation", schema=schema),
            {"run_id": run_id, "model_version": model_version, "role": role},
        )
        if rows:
            conn.execute(statement("insert_evaluation", schema=schema), rows)
    return len(rows)


def summary_line(role: str, version: str, metrics: Mapping[str, Mapping[str, float]], k: int) -> str:
    m = metrics.get("all", {})
    return (
        f"{role:<10} {version:<28} hr@{k}={m.get(f'hr@{k}', 0):.4f} ndcg@{k}={m.get(f'ndcg@{k}', 0):.4f} "
        f"mrr@{k}={m.get(f'mrr@{k}', 0):.4f} coverage@{k}={m.get(f'coverage@{k}', 0):.3f}"
    )
