"""Per-user ranked rows: the model's candidates re-ranked by the business rules, each with a reason."""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol

import numpy as np

from recsys_tasks.data.publication import RecommendationRow
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


class Scorer(Protocol):
    """What ranking needs of a model: its vocabulary and chunked top-K (``serving.recommender.Recommender``)."""

    vocab: ItemVocab

    def recommend(
        self,
        histories: SequenceData,
        *,
        k: int,
        exclude: Sequence[Iterable[int]] | None = None,
        batch_users: int = 4096,
        allowed: np.ndarray | None = None,
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
    activity: Any = None,
) -> Rules:
    """``Rules`` from ``publish`` config, the snapshot's events/items frames and the champion's item vectors.

    ``activity`` (``item_id``, ``trending``: one row per item with any interaction, from
    ``data.shards``) replaces the counts over ``events`` when ``events`` hold only some users (a shard).
    """
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
    touched = np.zeros(n, dtype=bool)
    if activity is None:
        window = with_item[(with_item["event_ts"] >= start) & (with_item["event_ts"] < stop)]
        trending_counts = np.bincount(vocab.encode(window["item_id"].astype(str).to_numpy()), minlength=n).astype(np.float64)[:n]
        touched[vocab.encode(with_item["item_id"].astype(str).to_numpy())] = True
    else:
        active = vocab.encode(activity["item_id"].astype(str).to_numpy())
        trending_counts = np.bincount(active, weights=activity["trending"].to_numpy(np.float64), minlength=n)[:n]
        touched[active] = True
    trending_counts[0] = 0
    trending_counts[np.setdiff1d(np.arange(n), idx[known])] = 0  # only catalogue items are published

    # New: in the model's vocabulary (so it has a text-initialised vector), created within the
    # trending window and without any interaction in the snapshot.
    created = pd.to_datetime(items["created_at"], utc=True)
    recent = ((created >= start) & (created < stop)).fillna(False).to_numpy(dtype=bool)
    new_mask = np.zeros(n, dtype=bool)
    new_mask[idx[known & recent]] = True
    new_mask &= ~touched
    new_mask[0] = False

    unit = None
    if item_vectors is not None and item_vectors.ndim == 2 and item_vectors.shape[1] > 1:
        unit = R.normalise(item_vectors)
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
        queries=R.search_queries(events),
    )


def recommendation_rows(
    scorer: Scorer,
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
    rules: Rules = Rules(),
    allowed: np.ndarray | None = None,
) -> Iterator[RecommendationRow]:
    """Every user's ranked rows, streamed chunk by chunk: the scorer's top ``k + rules.margin``
    candidates re-ranked by ``rules`` (the default ``Rules()`` is the plain top ``k``), each with a reason.
    ``allowed`` (V,) bool limits the candidates to those items (the run's catalogue)."""
    stamp = utc(generated_at or now())
    ids = [""] + scorer.vocab.item_ids  # item id per item index
    names = [""] + [titles.get(i) or i for i in ids[1:]]  # display name per item index
    catalogue = _Catalogue.of(rules, len(scorer.vocab))
    candidates = min(k + rules.margin, len(scorer.vocab) - 1)
    only = {"allowed": allowed} if allowed is not None else {}  # scorers without a catalogue keep their signature
    for offset, cand, cand_scores in scorer.recommend(histories, k=candidates, exclude=exclude, batch_users=batch_users, **only):
        chunk = range(offset, offset + cand.shape[0])
        users = [histories.user_ids[u] for u in chunk]
        h_items = histories.items[offset : chunk.stop]
        h_types = histories.event_types[offset : chunk.stop]
        excluded = exclude[offset : chunk.stop] if exclude is not None else [frozenset()] * len(chunk)
        lists = _final_lists(cand, cand_scores, h_items, h_types, users, excluded, rules, catalogue, k=k)
        reasons = _reasons(lists, h_items, h_types, names, rules)
        for b, user in enumerate(users):
            rank = 0
            for item, score, reason in zip(lists.top[b].tolist(), lists.scores[b].tolist(), reasons[b], strict=True):
                if item:  # padding (index 0) is not an item
                    rank += 1
                    yield RecommendationRow(as_of, user, rank, ids[item], score, model_version, run_id, reason[:200], stamp)


def champion_rows(
    recommender: Scorer,
    events: Any,
    items: Any,
    *,
    users: Sequence[str],
    config: Any,
    k: int,
    as_of: date,
    run_id: str,
    model_version: str,
    activity: Any = None,
    rules: Rules | None = None,
) -> Iterator[RecommendationRow]:
    """Rows for ``users`` with the business rules of ``config`` (a ``PublishConfig``) applied.

    Histories come from ``events`` (canonical frame), titles and categories from ``items``. The one
    path both the nightly publish and the hourly refresh take, so they never rank differently.
    ``rules`` prepared once (with ``activity``) serve every chunk of a shard's users; only their
    search queries come from ``events``.
    """
    from dataclasses import replace

    from recsys_tasks.data.sequences import build_sequences
    from recsys_tasks.serving.eligibility import catalogue_mask

    histories = build_sequences(events, recommender.vocab, users=users)
    if rules is None:
        rules = prepare_rules(
            config, vocab=recommender.vocab, events=events, items=items, as_of=as_of,
            item_vectors=recommender.item_vectors(), activity=activity,
        )
    else:
        rules = replace(rules, queries=R.search_queries(events))
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
        allowed=catalogue_mask(recommender.vocab, items),
    )


#: Why an item is in a list (decides its reason): the model, trending in the user's category,
#: trending anywhere, a new-item slot.
_MODEL, _TRENDING_IN, _TRENDING, _NEW = 0, 1, 2, 3
_SOURCE_KINDS = np.array([_TRENDING_IN, _TRENDING, _MODEL], dtype=np.int8)  # by cold_start_list's source


@dataclass(frozen=True)
class _Catalogue:
    """Per item index, what the rules look up: category code, trending count, whether it is new."""

    category: np.ndarray  # (V,) int64, R.UNKNOWN when unknown
    trending: np.ndarray  # (V,) float64
    is_new: np.ndarray  # (V,) bool

    @classmethod
    def of(cls, rules: Rules, num_items: int) -> _Catalogue:
        category = rules.item_category if rules.item_category is not None else np.full(num_items, R.UNKNOWN, dtype=np.int64)
        trending = rules.trending_counts if rules.trending_counts is not None else np.zeros(num_items)
        is_new = np.zeros(num_items, dtype=bool)
        is_new[rules.new_items] = True
        return cls(category, trending, is_new)


@dataclass
class _Lists:
    """One chunk's final lists (B, k), 0-padded, and why each item is there."""

    top: np.ndarray  # (B, k) int64 item indices
    scores: np.ndarray  # (B, k) float32, -inf at padding
    kind: np.ndarray  # (B, k) int8: _MODEL, _TRENDING_IN, _TRENDING or _NEW
    warm: np.ndarray  # (B,) bool: ranked by the model (a history long enough, and not empty)
    cold_category: dict[int, int]  # row -> category code of a cold-start user's list


def _final_lists(
    cand: np.ndarray,
    cand_scores: np.ndarray,
    h_items: Sequence[np.ndarray],
    h_types: Sequence[np.ndarray],
    users: Sequence[str],
    excluded: Sequence[Collection[int]],
    rules: Rules,
    catalogue: _Catalogue,
    *,
    k: int,
) -> _Lists:
    """The rules applied to one chunk's candidates (B, C): demotion, cold start, category cap, new-item slots."""
    B = cand.shape[0]
    lengths = np.fromiter((len(h) for h in h_items), dtype=np.int64, count=B)
    if rules.demote_after is not None:
        looks = R.look_counts(h_items, h_types, cand)
        cand_scores = R.demote(cand_scores, looks, after=rules.demote_after, factor=rules.demote_factor)
    cand, cand_scores = R.sort_candidates(cand, cand_scores)
    cand = np.where(np.isfinite(cand_scores), cand, 0)  # a demote_factor of 0 removes items

    cold = lengths < rules.min_history
    lists = _Lists(
        top=np.zeros((B, k), dtype=np.int64),
        scores=np.full((B, k), -np.inf, dtype=np.float32),
        kind=np.zeros((B, k), dtype=np.int8),
        warm=~cold & (lengths > 0),
        cold_category={},
    )
    for b in np.flatnonzero(cold).tolist():
        category = R.infer_category(
            h_items[b], catalogue.category, queries=rules.queries.get(users[b], ()), category_names=rules.category_names
        )
        items_b, scores_b, source = R.cold_start_list(
            k=k, category=category, trending_counts=catalogue.trending, item_category=catalogue.category,
            exclude=excluded[b], fallback=cand[b],
        )
        n = len(items_b)
        lists.top[b, :n], lists.scores[b, :n], lists.kind[b, :n] = items_b, scores_b, _SOURCE_KINDS[source]
        lists.cold_category[b] = category
    if rules.max_per_category is None:
        lists.top[~cold], lists.scores[~cold] = cand[~cold, :k], cand_scores[~cold, :k]  # padding is already last
    else:
        for b in np.flatnonzero(~cold).tolist():
            keep = R.cap_per_category(cand[b], catalogue.category[cand[b]], k=k, max_per_category=rules.max_per_category)
            lists.top[b, : len(keep)], lists.scores[b, : len(keep)] = cand[b, keep], cand_scores[b, keep]
    lists.scores = np.where(lists.top > 0, lists.scores, -np.inf)
    if rules.new_item_slots and rules.unit_vectors is not None and len(rules.new_items) and lists.warm.any():
        last_items = np.array([int(h[-1]) if len(h) else 0 for h in h_items], dtype=np.int64)
        placed = R.place_new_items(
            lists.top, lists.scores, rows=np.flatnonzero(lists.warm), last_items=last_items, is_new=catalogue.is_new,
            new_items=rules.new_items, unit_vectors=rules.unit_vectors, slots=rules.new_item_slots,
        )
        lists.kind[placed] = _NEW
    return lists


def _reasons(
    lists: _Lists, h_items: Sequence[np.ndarray], h_types: Sequence[np.ndarray], names: Sequence[str], rules: Rules
) -> list[list[str]]:
    """The reason of every position of one chunk's lists (B, k)."""
    B, k = lists.top.shape
    # A model item is "similar to <anchor>" for the closest of the user's recent items (with item
    # vectors), else "because you <verb> <last item>".
    if rules.unit_vectors is not None and lists.warm.any():
        anchors, explain = _anchors(h_items, h_types, names)
        which = R.most_similar_anchor(lists.top, anchors, rules.unit_vectors).tolist()  # (B, k)
    else:
        explain = [[_last_event_reason(h_items[b], h_types[b], names)] for b in range(B)]
        which = [[0] * k] * B
    reasons = []
    for b, (items, kinds) in enumerate(zip(lists.top.tolist(), lists.kind.tolist(), strict=True)):
        row = []
        for item, why, anchor in zip(items, kinds, which[b], strict=True):
            if why == _MODEL:
                row.append(explain[b][anchor])
            elif why == _TRENDING_IN:
                row.append(f"trending in {rules.category_names[lists.cold_category[b]]}")
            elif why == _TRENDING:
                row.append("trending now")
            else:
                category = rules.category_of(item)
                row.append(f"new in {category}" if category else "new for you")
        reasons.append(row)
    return reasons


def _last_event_reason(items: np.ndarray, kinds: np.ndarray, names: Sequence[str]) -> str:
    if len(items) == 0:
        return "trending now"
    return f"because you {_VERBS.get(int(kinds[-1]), 'viewed')} {names[int(items[-1])]}"


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
