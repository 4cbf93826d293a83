"""Per-user ranked rows: the model's candidates re-ranked by the business rules, each with a reason."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol

import numpy as np

from recsys_tasks.data.sequences import EVENT_TYPE_IDS, ItemVocab, SequenceData
from recsys_tasks.serving import rules as R
from recsys_tasks.timeutil import day_start, now, utc

log = logging.getLogger(__name__)

_VERBS = {
    EVENT_TYPE_IDS["view"]: "viewed",
    EVENT_TYPE_IDS["click"]: "clicked",
    EVENT_TYPE_IDS["add_to_cart"]: "added to your cart",
    EVENT_TYPE_IDS["purchase"]: "bought",
    EVENT_TYPE_IDS["rate"]: "rated",
}



class Recommender(Protocol):
    vocab: ItemVocab

    def recommend(
        self,
        histories: SequenceData,
        *,
        k: int,
        exclude: Sequence[Iterable[int]] | None = None,
        batch_users: int = 4096,
    ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]: ...

    def item_vectors(self) -> np.ndarray: ...


def exclusions(histories: SequenceData, event_types: Iterable[str]) -> list[set[int]]:
    """Per user, the item indices they had an event of one of ``event_types`` with (e.g. purchases)."""
    ids = {EVENT_TYPE_IDS[t] for t in event_types}
    if not ids:
        return [set() for _ in histories.user_ids]
    wanted = np.array(sorted(ids))
    return [set(items[np.isin(kinds, wanted)].tolist()) for items, kinds in zip(histories.items, histories.event_types, strict=True)]


@dataclass(frozen=True)
class Rules:
    """The business rules of one publish and the per-item arrays they need (indexed by item index).

    ``prepare_rules`` builds it from the config, the snapshot and the champion; the defaults switch
    every rule off (plain top-K).
    """

    margin: int = 0
    demote_after: int | None = None
    demote_factor: float = 1.0
    min_history: int = 0
    max_per_category: int | None = None
    new_item_slots: int = 0
    #: (V,) category code per item index, -1 unknown
    item_category: np.ndarray | None = None
    category_names: tuple[str, ...] = ()
    #: (V,) interactions per item over the trending window
    trending_counts: np.ndarray | None = None
    #: (N,) indices of new items (no interactions yet; vectors from their text)
    new_items: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    #: (V, d) unit item vectors for "similar to" reasons and new-item slots; None = not available
    unit_vectors: np.ndarray | None = None
    #: search texts per user id, to infer a cold-start user's category
    queries: Mapping[str, Sequence[str]] = field(default_factory=dict)

    def category_of(self, item: int) -> str | None:
        if self.item_category is None or not 0 < item < len(self.item_category):
            return None
        code = int(self.item_category[item])
        return self.category_names[code] if code != R.UNKNOWN else None


def prepare_rules(
    cfg: Any,
    *,
    vocab: ItemVocab,
    events: Any,
    items: Any,
    as_of: date,
    item_vectors: np.ndarray | None = None,
) -> Rules:
    """``Rules`` from ``publish`` config, the snapshot's events/items frames and the champion's item vectors."""
    import pandas as pd

    n = len(vocab)
    names = sorted({str(c) for c in items["category"].dropna().astype(str) if str(c)})
    codes = {name: code for code, name in enumerate(names)}
    item_category = np.full(n, R.UNKNOWN, dtype=np.int64)
    idx = vocab.encode(items["item_id"].astype(str).to_numpy())
    cats = items["category"].astype("string").fillna("").to_numpy()
    known = idx > 0
    item_category[idx[known]] = [codes.get(str(c), R.UNKNOWN) for c in cats[known]]

    stop = pd.Timestamp(day_start(as_of))
    start = stop - pd.Timedelta(days=cfg.trending_days)
    with_item = events[events["item_id"].notna()]
    window = with_item[(with_item["event_ts"] >= start) & (with_item["event_ts"] < stop)]
    trending_counts = np.bincount(vocab.encode(window["item_id"].astype(str).to_numpy()), minlength=n).astype(np.float64)[:n]
    trending_counts[0] = 0

    # New: in the model's vocabulary (so it has a text-initialised vector), created within the
    # trending window and without any interaction in the snapshot.
    touched = np.zeros(n, dtype=bool)
    touched[vocab.encode(with_item["item_id"].astype(str).to_numpy())] = True
    created = pd.to_datetime(items["created_at"], utc=True)
    recent = ((created >= start) & (created < stop)).fillna(False).to_numpy(dtype=bool)
    new_mask = np.zeros(n, dtype=bool)
    new_mask[idx[known & recent]] = True
    new_mask &= ~touched
    new_mask[0] = False

    unit = None
    if item_vectors is not None and item_vectors.ndim == 2 and item_vectors.shape[1] > 1:
        unit = R.normalise(item_vectors)
    searches = events[(events["event_type"] == "search") & events["query"].notna()]
    queries: dict[str, list[str]] = {}
    for user, query in zip(searches["user_id"].astype(str), searches["query"].astype(str), strict=True):
        queries.setdefault(user, []).append(query)
    return Rules(
        margin=cfg.candidate_margin,
        demote_after=cfg.demote_after,
        demote_factor=cfg.demote_factor,
        min_history=cfg.min_history,
        max_per_category=cfg.max_per_category,
        new_item_slots=cfg.new_item_slots if unit is not None else 0,
        item_category=item_category,
        category_names=tuple(names),
        trending_counts=trending_counts,
        new_items=np.flatnonzero(new_mask).astype(np.int64),
        unit_vectors=unit,
        queries=queries,
    )


def recommendation_rows(
    recommender: Recommender,
    histories: SequenceData,
    *,
    k: int,
    exclude: Sequence[set[int]] | None,
    as_of: date,
    run_id: str,
    model_version: str,
    titles: Mapping[str, str],
    batch_users: int = 4096,
    generated_at: datetime | None = None,
    rules: Rules | None = None,
) -> Iterator[tuple[Any, ...]]:
    """Rows of ``ROW_COLUMNS`` for every user in ``histories``, streamed chunk by chunk.

    Without ``rules`` a user's rows are the model's top ``k``; with them, the top ``k + margin``
    candidates are re-ranked by the rules first.
    """
    stamp = utc(generated_at or now())
    day = as_of
    vocab = recommender.vocab
    if rules is not None:
        yield from _ruled_rows(recommender, histories, k=k, exclude=exclude, day=day, run_id=run_id,
                               model_version=model_version, titles=titles, batch_users=batch_users, stamp=stamp, rules=rules)
        return
    ids = [""] + vocab.item_ids  # item id per item index
    for offset, top, scores in recommender.recommend(histories, k=k, exclude=exclude, batch_users=batch_users):
        for row, (items, item_scores) in enumerate(zip(top.tolist(), scores.tolist(), strict=True)):
            u = offset + row
            user = histories.user_ids[u]
            reason = _reason(histories.items[u], histories.event_types[u], vocab, titles)
            # A user with fewer than k eligible items gets index 0 (padding, -inf) after the real ones;
            # padding is not an item.
            for rank, (item, score) in enumerate(zip(items, item_scores, strict=True), start=1):
                if item > 0:
                    yield (day, user, rank, ids[item], score, model_version, run_id, reason, stamp)


def champion_rows(
    recommender: Recommender,
    events: Any,
    items: Any,
    *,
    users: Sequence[str],
    config: Any,
    k: int,
    as_of: date,
    run_id: str,
    model_version: str,
) -> Iterator[tuple[Any, ...]]:
    """Rows for ``users`` with the business rules of ``config`` (a ``PublishConfig``) applied.

    Histories come from ``events`` (canonical frame), titles and categories from ``items``. The one
    path both the nightly publish and the hourly refresh take, so they never rank differently.
    """
    from recsys_tasks.data.sequences import build_sequences

    histories = build_sequences(events, recommender.vocab, users=users)
    rules = prepare_rules(
        config, vocab=recommender.vocab, events=events, items=items, as_of=as_of, item_vectors=recommender.item_vectors()
    )
    log.info(
        "ranking %d users with rules: %d candidates per user, demote after %s looks (x%.2f), cold start below %d "
        "events, %d new items for %d slot(s), category cap %s",
        len(histories), k + config.candidate_margin, config.demote_after, config.demote_factor, config.min_history,
        len(rules.new_items), rules.new_item_slots, config.max_per_category,
    )
    return recommendation_rows(
        recommender,
        histories,
        k=k,
        exclude=exclusions(histories, config.exclude_event_types),
        as_of=as_of,
        run_id=run_id,
        model_version=model_version,
        titles=dict(zip(items["item_id"].astype(str), items["title"].fillna("").astype(str), strict=True)),
        batch_users=config.batch_users,
        rules=rules,
    )


#: Why an item is in a list (decides its reason): the model, trending in the user's category,
#: trending anywhere, a new-item slot.
_MODEL, _TRENDING_IN, _TRENDING, _NEW = 0, 1, 2, 3
_SOURCE_KINDS = np.array([_TRENDING_IN, _TRENDING, _MODEL], dtype=np.int8)  # by cold_start_list's source


def _ruled_rows(
    recommender: Recommender,
    histories: SequenceData,
    *,
    k: int,
    exclude: Sequence[set[int]] | None,
    day: date,
    run_id: str,
    model_version: str,
    titles: Mapping[str, str],
    batch_users: int,
    stamp: datetime,
    rules: Rules,
) -> Iterator[tuple[Any, ...]]:
    vocab = recommender.vocab
    ids = [""] + vocab.item_ids  # item id per item index
    names = [""] + [titles.get(i) or i for i in ids[1:]]  # display name per item index
    num_items = len(vocab)
    C = min(k + rules.margin, num_items - 1)
    cats = rules.item_category if rules.item_category is not None else np.full(num_items, R.UNKNOWN, dtype=np.int64)
    trending_counts = rules.trending_counts if rules.trending_counts is not None else np.zeros(num_items)
    is_new = np.zeros(num_items, dtype=bool)
    is_new[rules.new_items] = True
    for offset, cand, cand_scores in recommender.recommend(histories, k=C, exclude=exclude, batch_users=batch_users):
        B = cand.shape[0]
        h_items = histories.items[offset : offset + B]
        h_types = histories.event_types[offset : offset + B]
        lengths = np.fromiter((len(h) for h in h_items), dtype=np.int64, count=B)
        if rules.demote_after is not None:
            looks = R.look_counts(h_items, h_types, cand)
            cand_scores = R.demote(cand_scores, looks, after=rules.demote_after, factor=rules.demote_factor)
        cand, cand_scores = R.sort_candidates(cand, cand_scores)
        cand = np.where(np.isfinite(cand_scores), cand, 0)  # a demote_factor of 0 removes items

        # Final lists (B, k), padded with 0, and per position the kind of reason it gets.
        top = np.zeros((B, k), dtype=np.int64)
        top_scores = np.full((B, k), -np.inf, dtype=np.float32)
        kind = np.zeros((B, k), dtype=np.int8)
        cold = lengths < rules.min_history
        warm = ~cold & (lengths > 0)
        cold_category: dict[int, int] = {}
        for b in np.flatnonzero(cold).tolist():
            user = histories.user_ids[offset + b]
            category = R.infer_category(h_items[b], cats, queries=rules.queries.get(user, ()), category_names=rules.category_names)
            items_b, scores_b, source = R.cold_start_list(
                k=k, category=category, trending_counts=trending_counts, item_category=cats,
                exclude=exclude[offset + b] if exclude is not None else frozenset(), fallback=cand[b],
            )
            n = len(items_b)
            top[b, :n], top_scores[b, :n] = items_b, scores_b
            kind[b, :n] = _SOURCE_KINDS[source]
            cold_category[b] = category
        if rules.max_per_category is None:
            top[~cold], top_scores[~cold] = cand[~cold, :k], cand_scores[~cold, :k]  # padding is already last
        else:
            for b in np.flatnonzero(~cold).tolist():
                keep = R.cap_per_category(cand[b], cats[cand[b]], k=k, max_per_category=rules.max_per_category)
                top[b, : len(keep)], top_scores[b, : len(keep)] = cand[b, keep], cand_scores[b, keep]
        top_scores = np.where(top > 0, top_scores, -np.inf)

        if rules.new_item_slots and rules.unit_vectors is not None and len(rules.new_items) and warm.any():
            _new_item_slots(top, top_scores, kind, warm, h_items, is_new, rules, k=k)

        # Per user, the reasons a model item can get: "similar to <anchor>" for each of their recent
        # items (with item vectors), else "because you <verb> <last item>".
        if rules.unit_vectors is not None and warm.any():
            anchors, explain = _anchors(h_items, h_types, names)
            which = R.most_similar_anchor(top, anchors, rules.unit_vectors).tolist()  # (B, k)
        else:
            explain = [[_last_event_reason(h_items[b], h_types[b], names)] for b in range(B)]
            which = [[0] * k] * B
        top_l, score_l, kind_l = top.tolist(), top_scores.tolist(), kind.tolist()
        for b in range(B):
            user = histories.user_ids[offset + b]
            rank = 0
            for item, score, why, anchor in zip(top_l[b], score_l[b], kind_l[b], which[b], strict=True):
                if not item:
                    continue
                rank += 1
                if why == _MODEL:
                    reason = explain[b][anchor]
                elif why == _TRENDING_IN:
                    reason = f"trending in {rules.category_names[cold_category[b]]}"
                elif why == _TRENDING:
                    reason = "trending now"
                else:
                    category = rules.category_of(item)
                    reason = f"new in {category}" if category else "new for you"
                yield (day, user, rank, ids[item], score, model_version, run_id, reason[:200], stamp)


def _last_event_reason(items: np.ndarray, kinds: np.ndarray, names: Sequence[str]) -> str:
    if len(items) == 0:
        return "trending now"
    return f"because you {_VERBS.get(int(kinds[-1]), 'viewed')} {names[int(items[-1])]}"


def _new_item_slots(
    top: np.ndarray,
    top_scores: np.ndarray,
    kind: np.ndarray,
    warm: np.ndarray,
    h_items: Sequence[np.ndarray],
    is_new: np.ndarray,
    rules: Rules,
    *,
    k: int,
) -> None:
    """Give each warm user up to ``new_item_slots`` new items closest to their last item (in place).

    A full list loses its last items that are not new; the new item takes the displaced item's score,
    so scores stay ordered by rank. A short list grows instead, at its last score.
    """
    slots = min(rules.new_item_slots, k)
    rows = np.flatnonzero(warm)
    have = is_new[top[rows]].sum(axis=1)
    rows, have = rows[have < slots], have[have < slots]
    if not len(rows):
        return
    last = np.array([int(h_items[b][-1]) for b in rows], dtype=np.int64)
    best, _ = R.best_new_items(rules.unit_vectors[last], rules.new_items, rules.unit_vectors, exclude=top[rows], slots=slots)
    for r, b in enumerate(rows.tolist()):
        fill = [int(i) for i in best[r] if i > 0][: slots - int(have[r])]
        length = int((top[b] > 0).sum())
        free = list(range(length, min(k, length + len(fill))))
        tail = [p for p in range(length - 1, -1, -1) if not is_new[top[b, p]]][: len(fill) - len(free)]
        for p, item in zip(sorted(tail) + free, fill, strict=False):
            if p >= length:
                top_scores[b, p] = top_scores[b, length - 1] if length else 0.0
            top[b, p] = item
            kind[b, p] = _NEW


def _anchors(h_items: Sequence[np.ndarray], h_types: Sequence[np.ndarray], names: Sequence[str], *, size: int = 10) -> tuple[np.ndarray, list[list[str]]]:
    """Each user's last ``size`` distinct history items (B, size), 0-padded, and a reason per anchor."""
    B = len(h_items)
    anchors = np.zeros((B, size), dtype=np.int64)
    reasons: list[list[str]] = []
    for b in range(B):
        items, kinds = h_items[b], h_types[b]
        seen: dict[int, int] = {}
        for item, kind in zip(items[::-1].tolist(), kinds[::-1].tolist(), strict=True):
            if item not in seen:
                seen[item] = kind
                if len(seen) == size:
                    break
        anchors[b, : len(seen)] = list(seen)
        reasons.append([f"similar to {names[i]} you {_VERBS.get(t, 'viewed')}" for i, t in seen.items()] or ["trending now"])
    return anchors, reasons


def _reason(items: np.ndarray, kinds: np.ndarray, vocab: ItemVocab, titles: Mapping[str, str]) -> str:
    if len(items) == 0:
        return "trending now"
    last_item = vocab.decode([items[-1]])[0]
    title = titles.get(last_item, last_item)
    return f"because you {_VERBS.get(int(kinds[-1]), 'viewed')} {title}"[:200]
