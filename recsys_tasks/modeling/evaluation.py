"""Score challenger, champion and the most-popular baseline on one leakage-free temporal holdout
(the promotion rule that judges the scores is :mod:`recsys_tasks.modeling.promotion`).

The holdout is built once per run from the run's events (``data.temporal_split``): each user's
first item(s) at or after the cutoff, predicted from their events before it. Every model sees the
same users, the same histories and the same (empty) exclusion rule, and is scored against the full
catalogue it knows; a holdout item a model has never seen counts as a miss for that model.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
import pandas as pd
import sqlalchemy as sa

from recsys_tasks.data.event_window import EventWindow
from recsys_tasks.data.sequences import ItemVocab, SequenceData, TemporalSplit, build_sequences, item_events
from recsys_tasks.modeling.hardware import apply_threads
from recsys_tasks.modeling.metrics import NonFiniteMetric, coverage, per_user_metrics, require_finite
from recsys_tasks.registry import ModelRecord
from recsys_tasks.serving.ranking import Scorer
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
    #: the events before the cutoff, as a frame (``build_holdout``) or a window's arrays (``holdout_of``)
    train_events: pd.DataFrame | None = None
    #: users at least one of whose holdout items had no interaction before the cutoff
    new_item_users: np.ndarray | None = None
    window: EventWindow | None = None

    def __len__(self) -> int:
        return len(self.user_ids)

    def histories(self, vocab: ItemVocab) -> SequenceData:
        """Each holdout user's events before the cutoff, in ``vocab``'s indices (unknown items dropped)."""
        if self.window is not None:
            return self.window.encode(vocab, users=self.user_ids)
        return build_sequences(self.train_events, vocab, users=self.user_ids)


def build_holdout(split: TemporalSplit) -> Holdout:
    """The holdout users of ``split`` with their target items and history lengths."""
    train_items = item_events(split.train_events)
    counts = train_items.groupby("user_id").size()
    users, targets = _targets(split.holdout)
    lengths = counts.reindex(users, fill_value=0).to_numpy(dtype=np.int64)
    seen = set(train_items["item_id"].astype(str))
    return Holdout(users, targets, lengths, split.train_events, _new_item_users(targets, seen))


def holdout_of(window: EventWindow) -> Holdout:
    """The holdout of a window read from a snapshot (the same as ``build_holdout`` of its split).

    It keeps the holdout users' sequences only, so the rest of the window can be freed before scoring.
    """
    users, targets = _targets(window.holdout)
    seen = set(window.train_item_ids)
    lengths = window.history_lengths(users)
    return Holdout(users, targets, lengths, None, _new_item_users(targets, seen), window.only(users))


def _targets(holdout: pd.DataFrame) -> tuple[list[str], list[set[str]]]:
    targets = holdout.groupby("user_id", sort=True)["item_id"].agg(lambda s: set(map(str, s)))
    return [str(u) for u in targets.index], list(targets.to_numpy())


def _new_item_users(targets: list[set[str]], seen: set[str]) -> np.ndarray:
    return np.array([bool(t - seen) for t in targets], dtype=bool)


class Scores(dict[str, dict[str, float]]):
    """Metrics per segment (the dict), and ``per_user``: each holdout user's HR/NDCG/MRR in holdout order."""

    def __init__(self, segments: Mapping[str, dict[str, float]], per_user: Mapping[str, np.ndarray]) -> None:
        super().__init__(segments)
        self.per_user = dict(per_user)


def score(
    recommender: Scorer, holdout: Holdout, *, k: int, batch_users: int = 4096, num_threads: int | None = None
) -> Scores:
    """Metrics per segment: ``{"all": {"hr@10": .., "ndcg@10": .., "mrr@10": .., "coverage@10": ..}, ...}``.

    ``num_threads`` (``train.num_threads``; None: the CPUs this process may use) is applied first.
    """
    apply_threads(num_threads, what="scoring")
    histories = holdout.histories(recommender.vocab)
    k_eff = min(k, len(recommender.vocab) - 1)
    ranked: list[list[str]] = []
    broken = 0
    for _, top, top_scores in recommender.recommend(histories, k=k_eff, exclude=None, batch_users=batch_users):
        broken += int((~np.isfinite(np.asarray(top_scores, dtype=np.float64)) & (np.asarray(top) > 0)).any(axis=1).sum())
        ranked.extend(recommender.vocab.decode([i for i in row if i > 0]) for row in top)
    if broken:
        raise NonFiniteMetric(
            f"the model produced NaN or infinite scores for {broken} of {len(holdout)} holdout users, so it cannot be "
            "evaluated or published. Retrain it (full_retrain=true) or roll back to a verified version."
        )
    per_user = per_user_metrics(ranked, holdout.targets, k=k)
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
        metrics = {name: float(values[positions].mean()) if positions.size else 0.0 for name, values in per_user.items()}
        metrics[f"coverage@{k}"] = coverage(seg_ranked, catalogue_size=len(recommender.vocab) - 1, k=k)
        metrics["users"] = float(positions.size)
        out[name] = require_finite(metrics, what=f"segment {name!r}")
    return Scores(out, per_user)


class HoldoutLeak(RuntimeError):
    """A model would be scored on holdout events from inside its own training window."""


def check_outside_training(model: ModelRecord, holdout_start: datetime, *, role: str) -> None:
    """Raise :class:`HoldoutLeak` when ``model`` was trained on data at or after ``holdout_start``.

    Its metric would count events it was trained on (not a prediction); point-in-time champion
    selection makes this impossible, so reaching it means the registry's timeline is wrong.
    """
    if model.data_end > holdout_start:
        raise HoldoutLeak(
            f"the {role} {model.model_version} was trained on data up to {model.data_end:%Y-%m-%d %H:%M}, after this "
            f"run's holdout starts ({holdout_start:%Y-%m-%d %H:%M}): its metrics would be leaked and nothing was "
            "stored. Check the champion timeline (`SELECT * FROM <schema>.champion_timeline`) and rerun."
        )


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
