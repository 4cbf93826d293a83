"""The next-item loss over a large catalogue: which one a run uses, and the sampled softmax itself.

A full softmax scores every position against all V items; its output layer costs ``2 V C`` FLOPs a
position forward (about three times that with the backward pass), against roughly
``L (24 C^2 + 4 T C)`` for the transformer body. On a small catalogue the body dominates and the full
softmax is nearly free and the best loss (Klenitskiy & Vasilev, RecSys 2023). On a large catalogue the
output layer dominates and a sampled softmax wins on time to quality: its candidates are the batch's
own target items (in-batch negatives, whose vectors the positives need anyway) plus ``num_negatives``
items drawn by popularity, each scored once, with the logQ correction of Yi et al. (RecSys 2019)
so the estimate of the full softmax stays unbiased enough for ranking.

``choose_loss`` makes the choice from that cost estimate (``model.loss: auto``); ``full`` and
``sampled`` force it. Departure from Yi et al.: candidates are deduplicated, so the correction is the
log-probability that an item is among the candidates at all, ``log(1 - (1 - q)^M)``, not ``log q``;
the two agree for rare items and the former does not over-penalise the head of the catalogue.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F

from recsys_tasks.config import ModelConfig

log = logging.getLogger(__name__)

#: ``auto`` samples when a full-softmax step is estimated to cost this many times a sampled one. Not
#: 2: the full softmax converges in fewer epochs, and MovieLens-100K (estimate 1.97x) is where it was
#: measured best; at 3 the switch comes at about 3,500 items with the default model.
SAMPLED_WHEN_FULL_COSTS = 3.0


def step_cost_ratio(cfg: ModelConfig, num_items: int, positions: float) -> float:
    """Estimated FLOPs of a full-softmax step over those of a sampled-softmax step (>= 1 means full
    is dearer); ``positions`` is the number of target positions a batch holds."""
    c = cfg.hidden_size
    body = cfg.num_layers * (24 * c * c + 4 * cfg.max_len * c)
    candidates = min(num_items, positions + cfg.num_negatives)
    sampled_out = 2 * c * candidates / max(positions, 1.0)  # candidates are shared by the batch
    return (body + 2 * c * num_items) / (body + sampled_out)


def choose_loss(cfg: ModelConfig, num_items: int, *, positions: float) -> str:
    """``"full"`` or ``"sampled"`` for a run over ``num_items`` embedding rows (padding included)."""
    if cfg.loss != "auto":
        return cfg.loss
    if cfg.sampled_softmax_above is not None:  # the old fixed threshold, kept as an override
        return "sampled" if num_items - 1 > cfg.sampled_softmax_above else "full"
    ratio = step_cost_ratio(cfg, num_items, positions)
    choice = "sampled" if ratio >= SAMPLED_WHEN_FULL_COSTS else "full"
    log.info(
        "loss: %s softmax (a full-softmax step is estimated at %.1fx a sampled one: %d items, %.0f "
        "positions a batch, %d negatives)", choice, ratio, num_items - 1, positions, cfg.num_negatives,
    )
    return choice


def inclusion_log_prob(popularity: torch.Tensor, draws: int) -> torch.Tensor:
    """(V,) log-probability that each item is among ``draws`` popularity-weighted draws.

    The sampling distribution is add-one smoothed popularity; padding row 0 gets -inf.
    """
    q = popularity.float().clamp_min(0) + 1.0
    q[0] = 0.0
    q = q / q.sum()
    included = -torch.expm1(draws * torch.log1p(-q.clamp_max(1 - 1e-7)))  # 1 - (1 - q)^M
    return torch.log(included)


def sampled_softmax_loss(
    h: torch.Tensor,
    targets: torch.Tensor,
    item_weight: torch.Tensor,
    popularity: torch.Tensor,
    *,
    num_negatives: int,
    items: torch.Tensor | None = None,
    repeat_bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean cross-entropy of each target against the batch's candidates, logQ-corrected.

    ``h`` (B, T, C), ``targets`` (B, T) with 0 = ignore, ``item_weight`` (V, C), ``popularity`` (V,).
    Candidates are the distinct target items of the batch plus ``num_negatives`` popularity draws.
    With ``repeat_bias``, candidates already in ``items[b, :t + 1]`` (B, T) get it added, as in the
    full softmax.
    """
    valid = targets != 0  # (B, T)
    pos = targets[valid]  # (N,)
    q = popularity.float().clamp_min(0) + 1.0
    q[0] = 0.0
    drawn = torch.multinomial(q, num_negatives, replacement=True) if num_negatives > 0 else pos[:0]
    cand, inverse = torch.unique(torch.cat([pos, drawn]), return_inverse=True)  # (K,)
    label = inverse[: len(pos)]  # (N,) the target's column
    log_q = inclusion_log_prob(popularity, len(pos) + num_negatives)[cand]  # (K,)
    logits = h[valid] @ item_weight[cand].t() - log_q  # (N, K): one gather of the item vectors
    if repeat_bias is not None and items is not None:
        logits = logits + repeat_bias * _seen_candidates(items, cand, item_weight.shape[0])[valid]
    return F.cross_entropy(logits.float(), label)


def _seen_candidates(items: torch.Tensor, cand: torch.Tensor, num_items: int) -> torch.Tensor:
    """(B, T, K): 1.0 where candidate k occurs in ``items[b, :t + 1]``."""
    column = torch.full((num_items,), len(cand), dtype=torch.long, device=items.device)
    column[cand] = torch.arange(len(cand), device=items.device)
    column[0] = len(cand)  # padding is never a candidate
    onehot = torch.zeros(*items.shape, len(cand) + 1, device=items.device)
    onehot.scatter_(2, column[items].unsqueeze(-1), 1.0)
    return onehot.cumsum(dim=1).clamp_max_(1.0)[..., :-1]


__all__ = [
    "SAMPLED_WHEN_FULL_COSTS",
    "choose_loss",
    "inclusion_log_prob",
    "sampled_softmax_loss",
    "step_cost_ratio",
]
