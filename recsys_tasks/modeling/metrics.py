"""Top-K ranking metrics: HR@K, NDCG@K, MRR@K and catalogue coverage.

Each user has a ranked list of recommended items and a set of relevant (holdout) items. With one
relevant item these reduce to the textbook leave-one-out definitions:
HR@K = 1[rank <= K], NDCG@K = 1 / log2(rank + 1), MRR@K = 1 / rank (0 when rank > K).
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Sequence

import numpy as np
import torch


def per_user_metrics(
    ranked: np.ndarray | Sequence[Sequence[Hashable]],
    relevant: Sequence[Collection[Hashable]] | np.ndarray,
    *,
    k: int,
) -> dict[str, np.ndarray]:
    """HR@k, NDCG@k and MRR@k of each user, ``(n_users,)`` arrays: what a paired comparison resamples."""
    n = len(relevant)
    if len(ranked) != n:
        raise ValueError(f"ranked has {len(ranked)} users but relevant has {n}")
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    hr, ndcg, mrr = np.zeros(n), np.zeros(n), np.zeros(n)
    for u, (row, rel) in enumerate(zip(ranked, relevant, strict=True)):
        rel_set = {_plain(r) for r in rel}
        if not rel_set:
            continue
        hits = np.fromiter((_plain(i) in rel_set for i in list(row)[:k]), dtype=bool)
        if hits.any():
            hr[u] = 1.0
            mrr[u] = 1.0 / (int(np.argmax(hits)) + 1)
            ideal = discounts[: min(len(rel_set), k)].sum()
            ndcg[u] = float(discounts[: len(hits)][hits].sum() / ideal)
    return {f"hr@{k}": hr, f"ndcg@{k}": ndcg, f"mrr@{k}": mrr}


def rank_of_targets(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """1-based rank of each row's target among that row's scores (ties count against the target).

    NaN and infinite scores rank last: a broken score can never look like a perfect hit.
    """
    scores = np.where(np.isfinite(scores), scores, -np.inf)
    target_scores = scores[np.arange(len(targets)), targets]
    return (scores >= target_scores[:, None]).sum(axis=1)


def target_ranks(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``rank_of_targets`` in torch, on the scores' device: (B, V) scores, (B,) targets -> (B,) ranks."""
    scores = scores.nan_to_num(nan=float("-inf"), posinf=float("-inf"))  # one pass, no mask
    target_scores = scores.gather(1, targets.long().unsqueeze(1))  # (B, 1)
    return (scores >= target_scores).sum(dim=1)


class NonFiniteMetric(ValueError):
    """A metric came out NaN or infinite: the scores behind it are broken and must not be stored."""


def require_finite(metrics: dict[str, float], *, what: str) -> dict[str, float]:
    """``metrics`` if every value is finite, else ``NonFiniteMetric`` naming them and ``what`` was scored."""
    bad = {name: value for name, value in metrics.items() if not np.isfinite(value)}
    if bad:
        raise NonFiniteMetric(
            f"{what}: metrics {bad} are not finite, so its scores are broken (NaN/inf). Nothing was stored; "
            "retrain it (full_retrain=true) or roll back to a verified version."
        )
    return metrics


def metrics_from_ranks(ranks: np.ndarray, *, k: int) -> dict[str, float]:
    """HR@k, NDCG@k, MRR@k from 1-based ranks of a single target per user."""
    ranks = np.asarray(ranks, dtype=np.float64)
    if ranks.size == 0:
        return {f"hr@{k}": 0.0, f"ndcg@{k}": 0.0, f"mrr@{k}": 0.0}
    hit = ranks <= k
    return {
        f"hr@{k}": float(hit.mean()),
        f"ndcg@{k}": float(np.where(hit, 1.0 / np.log2(ranks + 1.0), 0.0).mean()),
        f"mrr@{k}": float(np.where(hit, 1.0 / ranks, 0.0).mean()),
    }


def coverage(ranked: np.ndarray | Sequence[Sequence[Hashable]], *, catalogue_size: int, k: int) -> float:
    """Share of the catalogue that appears in at least one user's top-k."""
    if catalogue_size <= 0:
        return 0.0
    seen: set[Hashable] = set()
    for row in ranked:
        seen.update(_plain(i) for i in list(row)[:k])
    return len(seen) / catalogue_size


def _plain(value: Hashable) -> Hashable:
    """numpy scalars as Python values, so ``np.int64(3)`` and ``3`` compare equal in sets."""
    return value.item() if isinstance(value, np.generic) else value
