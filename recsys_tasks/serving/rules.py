"""Business rules applied to a model's candidates before they are published.

Pure functions on numpy arrays: no database, no model, no I/O. Shapes use ``B`` for users in a chunk,
``C`` for candidates per user (``k`` plus a margin, so a re-ranked list still has ``k`` items), ``V``
for the vocabulary size (index 0 is padding, never an item) and ``d`` for the item vector width.
Category codes are small non-negative ints; ``-1`` means "unknown".
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from recsys_tasks.data.sequences import EVENT_TYPE_IDS

#: Event type ids that count as "looked at" for demotion: views and clicks (not carts or purchases).
LOOK_EVENT_TYPES: tuple[int, ...] = (EVENT_TYPE_IDS["view"], EVENT_TYPE_IDS["click"])

UNKNOWN = -1


def look_counts(
    history_items: Sequence[np.ndarray], history_types: Sequence[np.ndarray], candidates: np.ndarray
) -> np.ndarray:
    """How often each user viewed or clicked each of their candidates: B x (T_b,), B x (T_b,), (B, C) -> (B, C)."""
    B, C = candidates.shape
    if B == 0:
        return np.zeros((0, C), dtype=np.int64)
    lengths = np.fromiter((len(h) for h in history_items), dtype=np.int64, count=B)
    if lengths.sum() == 0:
        return np.zeros((B, C), dtype=np.int64)
    items = np.concatenate(history_items).astype(np.int64)
    kinds = np.concatenate(history_types)
    owner = np.repeat(np.arange(B, dtype=np.int64), lengths)
    width = int(max(items.max(initial=0), candidates.max(initial=0))) + 1
    looked = np.isin(kinds, LOOK_EVENT_TYPES)
    keys, counts = np.unique(owner[looked] * width + items[looked], return_counts=True)
    if keys.size == 0:
        return np.zeros((B, C), dtype=np.int64)
    wanted = np.arange(B, dtype=np.int64)[:, None] * width + candidates  # (B, C)
    pos = np.searchsorted(keys, wanted).clip(max=len(keys) - 1)
    return np.where(keys[pos] == wanted, counts[pos], 0).astype(np.int64)


def demote(scores: np.ndarray, looks: np.ndarray, *, after: int | None, factor: float) -> np.ndarray:
    """Scores with ``ln(factor)`` added where an item was looked at ``after`` or more times.

    The model's scores are logits, so adding ``ln(factor)`` multiplies the item's predicted probability
    by ``factor`` (0.5 halves it; 0 removes the item). ``after=None`` switches the rule off.
    """
    if after is None:
        return scores
    penalty = -math.inf if factor <= 0 else math.log(factor)
    return np.where(looks >= after, scores + np.float32(penalty), scores).astype(scores.dtype, copy=False)


def sort_candidates(items: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Candidates (B, C) ordered by score, best first; ties keep their order; padding (index 0) last."""
    key = np.where(items > 0, scores, -np.inf)
    order = np.argsort(-key, axis=1, kind="stable")
    return np.take_along_axis(items, order, axis=1), np.take_along_axis(key, order, axis=1)


def cap_per_category(items: np.ndarray, categories: np.ndarray, *, k: int, max_per_category: int | None) -> np.ndarray:
    """Positions (<= k) of a best-first list (C,) to keep so no category has more than ``max_per_category``.

    Greedy in score order; unknown categories are never capped. When the cap would leave fewer than
    ``k`` items, the best skipped items fill the list (a full list beats a strict cap).
    """
    real = np.flatnonzero(items > 0)
    if max_per_category is None:
        return real[:k]
    kept, skipped, used = [], [], {}
    for pos in real.tolist():
        cat = int(categories[pos])
        if cat != UNKNOWN and used.get(cat, 0) >= max_per_category:
            skipped.append(pos)
            continue
        used[cat] = used.get(cat, 0) + 1
        kept.append(pos)
        if len(kept) == k:
            break
    if len(kept) < k:
        kept = sorted(kept + skipped[: k - len(kept)])
    return np.asarray(kept, dtype=np.int64)


def trending(items: np.ndarray, timestamps: np.ndarray, *, since: float, until: float, num_items: int) -> np.ndarray:
    """Interaction counts (V,) of each item over events with ``since <= timestamp < until``."""
    inside = (timestamps >= since) & (timestamps < until) & (items > 0)
    return np.bincount(items[inside], minlength=num_items).astype(np.float64)[:num_items]


def ranked_by_count(counts: np.ndarray, *, within: np.ndarray | None = None) -> np.ndarray:
    """Item indices with a positive count, most counted first (ties: lower index first)."""
    eligible = counts > 0
    eligible[0] = False
    if within is not None:
        eligible &= within
    idx = np.flatnonzero(eligible)
    return idx[np.argsort(-counts[idx], kind="stable")]


def infer_category(
    history_items: np.ndarray,
    item_category: np.ndarray,
    *,
    queries: Iterable[str] = (),
    category_names: Sequence[str] = (),
) -> int:
    """The user's category code: the most frequent known category of their searches and item events.

    A search counts for every category whose name appears in its text (case-insensitive). Ties go to
    the category of the more recent event. ``UNKNOWN`` when nothing points anywhere.
    """
    votes: dict[int, tuple[int, int]] = {}  # code -> (count, last position)
    position = 0
    lowered = [name.lower() for name in category_names]
    for query in queries:
        text = str(query).lower()
        for code, name in enumerate(lowered):
            if name and name in text:
                count, _ = votes.get(code, (0, 0))
                votes[code] = (count + 1, position)
        position += 1
    for item in history_items.tolist():
        code = int(item_category[item]) if 0 < item < len(item_category) else UNKNOWN
        if code != UNKNOWN:
            count, _ = votes.get(code, (0, 0))
            votes[code] = (count + 1, position)
        position += 1
    if not votes:
        return UNKNOWN
    return max(votes, key=lambda c: votes[c])


def cold_start_list(
    *,
    k: int,
    category: int,
    trending_counts: np.ndarray,
    item_category: np.ndarray,
    exclude: set[int] | frozenset[int] = frozenset(),
    fallback: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Up to ``k`` items for a user with too little history: trending in their category, then trending
    anywhere, then ``fallback`` (e.g. the model's candidates), never an excluded item.

    Returns ``(items (n,), scores (n,), source (n,))`` where source is 0 for "trending in the
    category", 1 for "trending anywhere" and 2 for the fallback. A score is the item's trending count,
    capped by the scores above it so it never rises with rank (fallback items score 0).
    """
    chosen: list[int] = []
    origin: list[int] = []
    seen = set(exclude)
    seen.add(0)
    sources: list[tuple[int, np.ndarray]] = []
    if category != UNKNOWN:
        sources.append((0, ranked_by_count(trending_counts, within=item_category == category)))
    sources.append((1, ranked_by_count(trending_counts)))
    if fallback is not None:
        sources.append((2, np.asarray(fallback, dtype=np.int64)))
    for source, ranked in sources:
        for item in ranked.tolist():
            if len(chosen) == k:
                break
            if item in seen:
                continue
            seen.add(item)
            chosen.append(item)
            origin.append(source)
    items = np.asarray(chosen, dtype=np.int64)
    origins = np.asarray(origin, dtype=np.int8)
    scores = np.where(origins < 2, trending_counts[items], 0.0) if len(items) else np.zeros(0)
    scores = np.minimum.accumulate(scores) if len(items) else scores
    return items, scores.astype(np.float32), origins


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero): (N, d) -> (N, d) float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def best_new_items(
    profile: np.ndarray, new_items: np.ndarray, unit_vectors: np.ndarray, *, exclude: np.ndarray, slots: int
) -> tuple[np.ndarray, np.ndarray]:
    """For each user, the ``slots`` new items most similar (cosine) to their profile vector.

    ``profile`` (B, d) unit vectors (e.g. of the last item each user touched); ``new_items`` (N,) item
    indices; ``exclude`` (B, E) item indices a user must not get (already listed, bought; 0 = none).
    Returns ``(items (B, slots), similarity (B, slots))``; index 0 with ``-inf`` where none is left.
    """
    B = profile.shape[0]
    if slots <= 0 or len(new_items) == 0:
        return np.zeros((B, 0), dtype=np.int64), np.zeros((B, 0), dtype=np.float32)
    sims = profile @ unit_vectors[new_items].T  # (B, N)
    banned = (new_items[None, None, :] == exclude[:, :, None]).any(axis=1)  # (B, N)
    sims = np.where(banned, -np.inf, sims)
    take = min(slots, len(new_items))
    order = np.argsort(-sims, axis=1, kind="stable")[:, :take]
    best = np.take_along_axis(sims, order, axis=1)
    items = np.where(np.isfinite(best), new_items[order], 0)
    if take < slots:
        items = np.pad(items, ((0, 0), (0, slots - take)))
        best = np.pad(best, ((0, 0), (0, slots - take)), constant_values=-np.inf)
    return items.astype(np.int64), best.astype(np.float32)


def place_new_items(
    top: np.ndarray,
    scores: np.ndarray,
    *,
    rows: np.ndarray,
    last_items: np.ndarray,
    is_new: np.ndarray,
    new_items: np.ndarray,
    unit_vectors: np.ndarray,
    slots: int,
) -> np.ndarray:
    """Give each user of ``rows`` up to ``slots`` new items closest to their last item, in place.

    ``top``/``scores`` (B, k) ranked lists, 0-padded; ``rows`` the users (row indices) eligible;
    ``last_items`` (B,) each user's last item; ``is_new`` (V,) bool. A full list loses its last items
    that are not new, the new item taking the displaced item's score so scores stay ordered by rank;
    a short list grows instead, at its last score. Returns the (B, k) mask of positions filled.
    """
    k = top.shape[1]
    slots = min(slots, k)
    placed = np.zeros(top.shape, dtype=bool)
    have = is_new[top[rows]].sum(axis=1)
    rows, have = rows[have < slots], have[have < slots]
    if not len(rows):
        return placed
    best, _ = best_new_items(unit_vectors[last_items[rows]], new_items, unit_vectors, exclude=top[rows], slots=slots)
    for r, b in enumerate(rows.tolist()):
        fill = [int(i) for i in best[r] if i > 0][: slots - int(have[r])]
        length = int((top[b] > 0).sum())
        free = list(range(length, min(k, length + len(fill))))
        tail = [p for p in range(length - 1, -1, -1) if not is_new[top[b, p]]][: len(fill) - len(free)]
        for p, item in zip(sorted(tail) + free, fill, strict=False):
            if p >= length:
                scores[b, p] = scores[b, length - 1] if length else 0.0
            top[b, p] = item
            placed[b, p] = True
    return placed


def most_similar_anchor(candidates: np.ndarray, anchors: np.ndarray, unit_vectors: np.ndarray) -> np.ndarray:
    """For each candidate (B, C), the position in ``anchors`` (B, A) of its most similar anchor item.

    Used to explain a recommendation by the history item it resembles most. The candidate itself is
    chosen only when it is the user's sole anchor; index 0 is padding and never chosen (unless a user
    has no anchors at all, which gives position 0).
    """
    cand = unit_vectors[candidates]  # (B, C, d)
    anch = unit_vectors[anchors]  # (B, A, d)
    sims = np.einsum("bcd,bad->bca", cand, anch)  # (B, C, A)
    # An item is not explained by itself (a re-recommended item gets its closest other anchor).
    sims = np.where(anchors[:, None, :] == candidates[:, :, None], -2.0, sims)
    sims = np.where(anchors[:, None, :] > 0, sims, -np.inf)
    return sims.argmax(axis=2)


def top_neighbours(
    unit_vectors: np.ndarray,
    rows: np.ndarray,
    *,
    n: int,
    eligible: np.ndarray | None = None,
    item_chunk: int = 16_384,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` most similar items (cosine) to each item in ``rows``, never the item itself or padding.

    ``unit_vectors`` (V, d) rows of unit length; ``rows`` (R,) item indices; ``eligible`` (V,) bool
    restricts neighbours (e.g. to items still in the catalogue). Returns ``(items (R, n), sims (R, n))``
    best first, padded with index 0 / ``-inf`` when fewer than ``n`` neighbours exist. Similarities
    are computed ``item_chunk`` items at a time into a running top-n: memory (R, item_chunk + n).
    """
    R, V = len(rows), len(unit_vectors)
    best_i = np.zeros((R, 0), dtype=np.int64)
    best_s = np.zeros((R, 0), dtype=np.float64)
    for lo in range(0, V, item_chunk):
        hi = min(lo + item_chunk, V)
        sims = unit_vectors[rows] @ unit_vectors[lo:hi].T  # (R, hi - lo)
        if lo == 0:
            sims[:, 0] = -np.inf
        own = (rows >= lo) & (rows < hi)
        sims[np.flatnonzero(own), rows[own] - lo] = -np.inf
        if eligible is not None:
            sims[:, ~eligible[lo:hi]] = -np.inf
        cand_s = np.concatenate([best_s, sims], axis=1)
        cand_i = np.concatenate([best_i, np.broadcast_to(np.arange(lo, hi), sims.shape)], axis=1)
        take = min(n, cand_s.shape[1])
        part = np.argpartition(-cand_s, take - 1, axis=1)[:, :take]
        best_s, best_i = np.take_along_axis(cand_s, part, axis=1), np.take_along_axis(cand_i, part, axis=1)
    order = np.lexsort((best_i, -best_s), axis=1)  # best first; ties: lower index first
    items = np.take_along_axis(best_i, order, axis=1)
    best = np.take_along_axis(best_s, order, axis=1)
    items = np.where(np.isfinite(best), items, 0)
    take = items.shape[1]
    if take < n:
        items = np.pad(items, ((0, 0), (0, n - take)))
        best = np.pad(best, ((0, 0), (0, n - take)), constant_values=-np.inf)
    return items.astype(np.int64), best.astype(np.float32)


def search_queries(events: Any) -> dict[str, list[str]]:
    """Each user's search queries in ``events``, in order (what a list's search-based reasons quote)."""
    searches = events[(events["event_type"] == "search") & events["query"].notna()]
    queries: dict[str, list[str]] = {}
    for user, query in zip(searches["user_id"].astype(str), searches["query"].astype(str), strict=True):
        queries.setdefault(user, []).append(query)
    return queries


__all__ = [
    "LOOK_EVENT_TYPES",
    "UNKNOWN",
    "best_new_items",
    "cap_per_category",
    "cold_start_list",
    "demote",
    "infer_category",
    "look_counts",
    "most_similar_anchor",
    "normalise",
    "ranked_by_count",
    "search_queries",
    "sort_candidates",
    "top_neighbours",
    "trending",
]

