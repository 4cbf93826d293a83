"""Publish per-user top-K recommendations for one as-of date, atomically and idempotently.

Rows stream from batch inference into a staging table (PostgreSQL: ``COPY FROM STDIN`` through
psycopg 3; other databases: chunked ``executemany``). Then, in one transaction, the staging table
replaces the as-of date's rows (PostgreSQL: detach/drop the old partition, attach the new one;
SQLite: delete + insert) and the ``publications`` row is upserted. A reader of
``latest_recommendations`` sees the old complete set until commit and the new complete set after;
a publish killed before commit leaves the previous publication untouched.

Business rules (``recsys_tasks.rules``) run per chunk of users on the model's top ``k + margin``
candidates: purchased items are excluded, items looked at repeatedly without buying are demoted,
cold-start users get trending items of their category, new items get a slot, an optional category
cap diversifies the list, and every row carries a reason. ``similar_items`` (top-N neighbours per
item by cosine of the champion's item vectors) is published with the same stage-and-swap.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any, Protocol

import numpy as np
import sqlalchemy as sa

from recsys_tasks import rules as R
from recsys_tasks.data import EVENT_TYPE_IDS, ItemVocab, SequenceData
from recsys_tasks.registry import iso
from recsys_tasks.sqlfiles import load_sql, split_statements

log = logging.getLogger(__name__)

ROW_COLUMNS = ("as_of", "user_id", "rank", "item_id", "score", "model_version", "run_id", "reason", "generated_at")
SIMILAR_COLUMNS = ("as_of", "item_id", "rank", "similar_item_id", "score", "model_version")
_VERBS = {
    EVENT_TYPE_IDS["view"]: "viewed",
    EVENT_TYPE_IDS["click"]: "clicked",
    EVENT_TYPE_IDS["add_to_cart"]: "added to your cart",
    EVENT_TYPE_IDS["purchase"]: "bought",
    EVENT_TYPE_IDS["rate"]: "rated",
}


class PublishError(RuntimeError):
    """A publication could not be written; the previous publication is unchanged."""


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


@dataclass(frozen=True)
class Publication:
    """What one publish wrote."""

    as_of: date
    model_version: str
    users: int
    rows: int
    seconds: float


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

    stop = pd.Timestamp(datetime(as_of.year, as_of.month, as_of.day, tzinfo=timezone.utc))
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
    stamp = (generated_at or datetime.now(timezone.utc)).astimezone(timezone.utc)
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
    from recsys_tasks.data import build_sequences

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


def portable_params(columns: Sequence[str], row: Sequence[Any]) -> dict[str, Any]:
    """Bind parameters of one row for databases without COPY: dates and timestamps as ISO text
    (``registry.iso``), so every writer stores them in the same sortable form."""
    return {c: iso(v) if isinstance(v, (date, datetime)) else v for c, v in zip(columns, row, strict=True)}


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


def publish(
    engine: sa.Engine,
    schema: str,
    rows: Iterable[tuple[Any, ...]],
    *,
    as_of: date,
    run_id: str,
    model_version: str,
    top_k: int,
    chunk_rows: int = 50_000,
) -> Publication:
    """Load ``rows`` into staging and swap them in as the publication of ``as_of``."""
    started = time.monotonic()
    day = as_of.isoformat()

    def record(conn: sa.Connection, count: int, users: int) -> None:
        publication = {
            "as_of": day,
            "run_id": run_id,
            "model_version": model_version,
            "users": users,
            "rows": count,
            "top_k": top_k,
            "published_at": iso(datetime.now(timezone.utc)),
        }
        conn.execute(sa.text(load_sql("upsert_publication", schema=schema)), publication)

    count, users = stage_and_swap(engine, schema, "recommendations", rows, as_of=as_of, chunk_rows=chunk_rows, in_swap=record)
    seconds = time.monotonic() - started
    log.info("published %d rows for %d users as of %s (model %s) in %.1fs", count, users, as_of, model_version, seconds)
    return Publication(as_of=as_of, model_version=model_version, users=users, rows=count, seconds=seconds)


#: Tables published by stage-and-swap, with their columns (``sql/*_<table>_*`` holds their statements).
TABLES: dict[str, tuple[str, ...]] = {"recommendations": ROW_COLUMNS, "similar_items": SIMILAR_COLUMNS}
#: PostgreSQL types of those columns, for binary COPY.
_PG_TYPES: dict[str, list[str]] = {
    "recommendations": ["date", "text", "int2", "text", "float4", "text", "text", "text", "timestamptz"],
    "similar_items": ["date", "text", "int2", "text", "float4", "text"],
}


def stage_and_swap(
    engine: sa.Engine,
    schema: str,
    table: str,
    rows: Iterable[tuple[Any, ...]],
    *,
    as_of: date,
    chunk_rows: int = 50_000,
    in_swap: Callable[[sa.Connection, int, int], None] | None = None,
) -> tuple[int, int]:
    """Replace ``as_of``'s rows of ``table`` with ``rows`` atomically; return (rows, distinct keys).

    ``rows`` are grouped by their second column (user or item); ``in_swap(conn, rows, keys)`` runs
    inside the swap's transaction (e.g. to record the publication).
    """
    if table not in TABLES:
        raise ValueError(f"unknown published table {table!r}; use one of {sorted(TABLES)}")
    stage = f"{table}_stage_{as_of:%Y%m%d}"
    dialect = engine.dialect.name
    with engine.begin() as conn:
        conn.execute(sa.text(load_sql("drop_recommendations_stage", schema=schema, stage=stage)))
        conn.execute(sa.text(load_sql(f"create_{table}_stage", dialect=dialect, schema=schema, stage=stage)))
    try:
        if dialect == "postgresql":
            count, keys = _copy_postgres(engine, schema, table, stage, rows)
        else:
            count, keys = _insert_portable(engine, schema, table, stage, rows, chunk_rows)
        _swap(engine, schema, table, stage, as_of=as_of, in_swap=lambda conn: in_swap(conn, count, keys) if in_swap else None)
    except BaseException:
        # The published set is untouched; the leftover stage is dropped here or by the next run.
        try:
            with engine.begin() as conn:
                conn.execute(sa.text(load_sql("drop_recommendations_stage", schema=schema, stage=stage)))
        except sa.exc.SQLAlchemyError:  # pragma: no cover - best effort cleanup
            log.warning("could not drop staging table %s.%s; the next publish drops it", schema, stage)
        raise
    return count, keys


def _progress(count: int, started: float, last: float) -> float:
    now = time.monotonic()
    if now - last > 10:
        log.info("publishing: %d rows staged (%.0f rows/s)", count, count / max(now - started, 1e-9))
        return now
    return last


def _copy_postgres(engine: sa.Engine, schema: str, table: str, stage: str, rows: Iterable[tuple[Any, ...]]) -> tuple[int, int]:
    # Binary COPY: psycopg encodes rows in C and the server skips text parsing, so loading runs at
    # about twice the rate of a text COPY of the same rows (docs/bench_publish.md).
    sql = load_sql(f"copy_{table}_stage", dialect="postgresql", schema=schema, stage=stage)
    types = _PG_TYPES[table]
    temporal = [i for i, t in enumerate(types) if t in ("date", "timestamptz")]
    count, users, last_user = 0, 0, None
    started = last = time.monotonic()
    raw = engine.raw_connection()
    try:
        pg = raw.driver_connection
        stream = iter(rows)
        first = next(stream, None)
        if first is not None:
            stream = _chain(first, stream)
            if any(isinstance(first[i], str) for i in temporal):  # ISO text (hand-made rows): parse it
                stream = map(_TemporalParser(temporal), stream)
        with pg.cursor() as cur, cur.copy(sql) as copy:
            copy.set_types(types)
            for row in stream:
                copy.write_row(row)
                count += 1
                if row[1] != last_user:
                    users, last_user = users + 1, row[1]
                if count % 100_000 == 0:
                    last = _progress(count, started, last)
        pg.commit()
    finally:
        raw.close()
    return count, users


def _chain(first: tuple[Any, ...], rest: Iterator[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
    yield first
    yield from rest


class _TemporalParser:
    """Turn ISO date/timestamp text at ``positions`` into date/datetime objects (cached: they repeat)."""

    def __init__(self, positions: Sequence[int]) -> None:
        self.positions = positions
        self.cache: dict[str, Any] = {}

    def __call__(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        out = list(row)
        for i in self.positions:
            value = out[i]
            if isinstance(value, str):
                if value not in self.cache:
                    self.cache[value] = date.fromisoformat(value) if len(value) == 10 else datetime.fromisoformat(value)
                out[i] = self.cache[value]
        return tuple(out)


def _insert_portable(
    engine: sa.Engine, schema: str, table: str, stage: str, rows: Iterable[tuple[Any, ...]], chunk_rows: int
) -> tuple[int, int]:
    sql = sa.text(load_sql(f"insert_{table}_stage", schema=schema, stage=stage))
    columns = TABLES[table]
    count, users, last_user, batch = 0, 0, None, []
    started = last = time.monotonic()
    with engine.begin() as conn:
        for row in rows:
            batch.append(portable_params(columns, row))
            count += 1
            if row[1] != last_user:
                users, last_user = users + 1, row[1]
            if len(batch) >= chunk_rows:
                conn.execute(sql, batch)
                batch = []
                last = _progress(count, started, last)
        if batch:
            conn.execute(sql, batch)
    return count, users


def _swap(
    engine: sa.Engine,
    schema: str,
    table: str,
    stage: str,
    *,
    as_of: date,
    in_swap: Callable[[sa.Connection], None],
) -> None:
    day = as_of.isoformat()
    if engine.dialect.name == "postgresql":
        partition = f"{table}_p{as_of:%Y%m%d}"
        names = {"schema": schema, "stage": stage, "partition": partition, "stage_check": f"{stage}_as_of"}
        literals = {"as_of_literal": day}
        with engine.begin() as conn:  # slow part (constraint, index builds) before the swap's locks
            for stmt in split_statements(load_sql(f"prepare_{table}_partition", dialect="postgresql", date_literals=literals, **names)):
                conn.exec_driver_sql(stmt)
        with engine.begin() as conn:
            exists = conn.execute(sa.text("SELECT to_regclass(:name)"), {"name": f'"{schema}"."{partition}"'}).scalar()
            if exists:
                for stmt in split_statements(load_sql(f"detach_{table}_partition", dialect="postgresql", **names)):
                    conn.exec_driver_sql(stmt)
            for stmt in split_statements(load_sql(f"swap_{table}_partition", dialect="postgresql", date_literals=literals, **names)):
                conn.exec_driver_sql(stmt)
            in_swap(conn)
    else:
        with engine.begin() as conn:
            for stmt in split_statements(load_sql(f"replace_{table}", dialect=engine.dialect.name, schema=schema, stage=stage)):
                conn.execute(sa.text(stmt), {"as_of": day})
            in_swap(conn)
            conn.execute(sa.text(load_sql("drop_recommendations_stage", schema=schema, stage=stage)))


# ---------------------------------------------------------------------------------------------- similar items


def similar_item_rows(
    item_vectors: np.ndarray,
    vocab: ItemVocab,
    *,
    n: int,
    as_of: date,
    model_version: str,
    eligible: np.ndarray | None = None,
    batch_items: int = 1024,
) -> Iterator[tuple[Any, ...]]:
    """Rows of ``SIMILAR_COLUMNS``: each eligible item's ``n`` nearest items by cosine, best first."""
    unit = R.normalise(item_vectors)
    mask = np.ones(len(vocab), dtype=bool) if eligible is None else eligible.copy()
    mask[0] = False
    mask &= np.linalg.norm(unit, axis=1) > 0
    ids = vocab.item_ids
    day = as_of
    rows = np.flatnonzero(mask)
    for start in range(0, len(rows), batch_items):
        chunk = rows[start : start + batch_items]
        neighbours, sims = R.top_neighbours(unit, chunk, n=n, eligible=mask)
        for item, nbrs, scores in zip(chunk.tolist(), neighbours, sims, strict=True):
            name = ids[item - 1]
            for rank, (other, score) in enumerate(zip(nbrs.tolist(), scores.tolist(), strict=True), start=1):
                if other > 0:
                    yield (day, name, rank, ids[other - 1], float(score), model_version)


def publish_similar_items(
    engine: sa.Engine, schema: str, rows: Iterable[tuple[Any, ...]], *, as_of: date, chunk_rows: int = 50_000
) -> tuple[int, int]:
    """Replace ``as_of``'s ``similar_items`` with ``rows`` atomically; return (rows, items)."""
    started = time.monotonic()
    count, items = stage_and_swap(engine, schema, "similar_items", rows, as_of=as_of, chunk_rows=chunk_rows)
    log.info("published %d similar-item rows for %d items as of %s in %.1fs", count, items, as_of, time.monotonic() - started)
    return count, items
