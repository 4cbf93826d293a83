"""Leave-one-out metrics for tens of thousands of users against the full catalogue, in torch.

Users are scored a chunk at a time (memory is (chunk, V) scores); inside a chunk everything is one
tensor operation on the scores' device: the target's full-catalogue rank, the top-k lists
(``torch.topk``, for coverage), and the sampled metrics, which rank the target against
``num_sampled`` distinct items the user never interacted with, drawn uniformly without replacement
(``draw_unseen``), with no Python work per user.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from recsys_tasks.modeling.metrics import metrics_from_ranks, target_ranks


@torch.no_grad()
def sampled_ranks(
    scores: torch.Tensor,
    targets: torch.Tensor,
    seen: torch.Tensor,
    *,
    num_sampled: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """(B,) 1-based rank of each target among itself and ``num_sampled`` distinct unseen items.

    ``scores`` (B, V), ``targets`` (B,), ``seen`` (B, V) bool: items never drawn (the history; column
    0 is never drawn either). A user with fewer unseen items gets all of them.
    """
    drawn, real = draw_unseen(seen, num_sampled, generator)  # (B, n) each
    clean = scores.nan_to_num(nan=float("-inf"), posinf=float("-inf"))
    target_scores = clean.gather(1, targets.unsqueeze(1))  # (B, 1)
    return 1 + ((clean.gather(1, drawn.to(scores.device)) >= target_scores) & real.to(scores.device)).sum(dim=1)


def draw_unseen(seen: torch.Tensor, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` distinct items per row, uniformly among the row's unseen ones (never 0): indices (B, n)
    and a mask (B, n) of the real draws (False where a row has fewer than ``n`` unseen items).

    Draws ``4 n`` ids with replacement and keeps the first ``n`` distinct unseen ones (first
    occurrences of i.i.d. uniform draws are a uniform draw without replacement); the rare rows left
    short fall back to an exact draw over the whole catalogue.
    """
    seen = seen.cpu()
    rows, v = seen.shape
    n = min(n, v - 1)
    ids = torch.randint(1, v, (rows, 4 * n), generator=generator)  # (B, 4n)
    order = torch.sort(ids, dim=1, stable=True)
    repeat = torch.zeros_like(ids, dtype=torch.bool)
    repeat[:, 1:] = order.values[:, 1:] == order.values[:, :-1]  # later occurrences of a value
    duplicate = torch.zeros_like(repeat).scatter_(1, order.indices, repeat)
    ok = ~duplicate & ~seen.gather(1, ids)
    keep = ok & (ok.cumsum(dim=1) <= n)
    slots = torch.where(keep, keep.cumsum(dim=1) - 1, n)  # slot n collects the rest
    drawn = torch.zeros(rows, n + 1, dtype=torch.long).scatter_(1, slots, ids)[:, :n]
    real = torch.arange(n).unsqueeze(0) < keep.sum(dim=1, keepdim=True)
    unseen = v - 1 - seen[:, 1:].sum(dim=1, keepdim=True)
    short = (real.sum(dim=1, keepdim=True) < unseen.clamp_max(n)).squeeze(1).nonzero().squeeze(1)
    if len(short):
        keys = torch.rand(len(short), v, generator=generator).masked_fill(seen[short], float("inf"))
        keys[:, 0] = float("inf")
        short_keys, drawn[short] = torch.topk(keys, n, dim=1, largest=False)
        real[short] = torch.isfinite(short_keys)
    return drawn, real


@torch.no_grad()
def leave_one_out_metrics(
    score_users: Callable[[np.ndarray], torch.Tensor],
    histories: Sequence[np.ndarray],
    targets: np.ndarray,
    *,
    num_items: int,
    k: int = 10,
    num_sampled: int = 100,
    seed: int = 0,
    chunk: int = 2048,
) -> dict[str, float]:
    """Full-catalogue and sampled HR/NDCG/MRR@k and coverage@k of each user's ``targets`` item.

    ``score_users(positions)`` returns (len(positions), num_items) scores for those users;
    ``histories[u]`` holds the items user ``u`` interacted with (never drawn as sampled negatives).
    """
    generator = torch.Generator().manual_seed(seed)
    full, sampled, covered = [], [], torch.zeros(num_items, dtype=torch.bool)
    for lo in range(0, len(targets), chunk):
        positions = np.arange(lo, min(lo + chunk, len(targets)))
        scores = score_users(positions).float()  # (B, V)
        t = torch.as_tensor(targets[positions], dtype=torch.long, device=scores.device)
        full.append(target_ranks(scores, t).cpu())
        top = torch.topk(scores, min(k, num_items - 1), dim=1).indices.cpu()  # (B, k)
        covered[top.flatten()] = True
        seen = _seen_matrix([histories[u] for u in positions], num_items).to(scores.device)
        sampled.append(sampled_ranks(scores, t, seen, num_sampled=num_sampled, generator=generator).cpu())
    out = metrics_from_ranks(torch.cat(full).numpy(), k=k)
    out.update({f"sampled_{name}": v for name, v in metrics_from_ranks(torch.cat(sampled).numpy(), k=k).items()})
    covered[0] = False
    out[f"coverage@{k}"] = float(covered.sum()) / max(1, num_items - 1)
    return out


def _seen_matrix(histories: Sequence[np.ndarray], num_items: int) -> torch.Tensor:
    """(B, V) bool: True where item v is in user b's history."""
    rows = np.repeat(np.arange(len(histories)), [len(h) for h in histories])
    cols = np.concatenate([np.asarray(h, dtype=np.int64) for h in histories]) if histories else np.zeros(0, int)
    seen = torch.zeros(len(histories), num_items, dtype=torch.bool)
    seen[torch.from_numpy(rows), torch.from_numpy(cols)] = True
    return seen


__all__ = ["draw_unseen", "leave_one_out_metrics", "sampled_ranks"]
