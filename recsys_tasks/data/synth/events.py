"""The synthetic shop's events frame: views, their funnels, later ratings and searches, turned into
canonical rows (see :mod:`recsys_tasks.data.synth`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np
import pandas as pd

from recsys_tasks.config import EVENT_TYPES
from recsys_tasks.data.sequences import EVENT_COLUMNS
from recsys_tasks.data.synth.catalogue import Catalogue, Category, epoch_us
from recsys_tasks.data.synth.sessions import FUNNEL, Sessions, Users

_RATINGS_P = (0.05, 0.07, 0.15, 0.33, 0.40)  # P(rating = 1..5)
_TYPE_CODE = {name: i for i, name in enumerate(EVENT_TYPES)}
_FIELDS = ("session", "user", "item", "type", "t", "value")  # index arrays before ids are filled in

#: One kind of event as parallel arrays keyed by ``_FIELDS`` (session/item -1 = none).
_Part = dict[str, np.ndarray]


def make_events(
    rng: np.random.Generator, sess: Sessions, cat: Catalogue, users: Users, start: datetime, span_s: float
) -> pd.DataFrame:
    """The canonical events frame of ``sess`` inside ``[start, start + span_s)``, in time order."""
    parts = [*_funnel_parts(rng, sess, cat), _search_part(sess)]
    ev = {key: np.concatenate([p[key] for p in parts]) for key in _FIELDS}

    # keep [start, end): microsecond timestamps, events at or after the end are dropped
    ev["t"] = np.floor(ev["t"] * 1e6).astype(np.int64)
    keep = ev["t"] < int(round(span_s * 1e6))
    ev = {key: a[keep] for key, a in ev.items()}
    order = np.lexsort((ev["type"], ev["item"], ev["user"], ev["t"]))
    ev = {key: a[order] for key, a in ev.items()}
    n = len(ev["t"])

    queries = np.full(n, None, dtype=object)
    is_search = ev["type"] == _TYPE_CODE["search"]
    if is_search.any():
        queries[is_search] = _queries(rng, sess.category[ev["session"][is_search]], cat.categories)
    width = max(7, len(str(len(sess.user))))
    session_ids = np.array([f"s{s:0{width}d}" for s in range(len(sess.user))] + [None], dtype=object)
    id_width = max(9, len(str(n)))
    return pd.DataFrame(
        {
            "event_id": np.array([f"e{i:0{id_width}d}" for i in range(n)], dtype=object),
            "user_id": users.ids[ev["user"]],
            "item_id": cat.ids[ev["item"]],
            "event_type": np.array(EVENT_TYPES, dtype=object)[ev["type"]],
            "event_ts": pd.to_datetime(epoch_us(start) + ev["t"], unit="us", utc=True),
            "value": ev["value"],
            "query": queries,
            "session_id": session_ids[ev["session"]],
        },
        columns=list(EVENT_COLUMNS),
    )


def _funnel_parts(rng: np.random.Generator, sess: Sessions, cat: Catalogue) -> list[_Part]:
    """Views, the funnel steps that follow them (value = price) and ratings (value = stars) days later."""
    view_t = sess.start_s[sess.view_session] + sess.view_offset_s
    click_t = view_t + sess.funnel_delay_s[:, 0]
    cart_t = click_t + sess.funnel_delay_s[:, 1]
    buy_t = cart_t + sess.funnel_delay_s[:, 2]
    price = cat.price[sess.view_item]
    parts = [
        _view_part(sess, np.ones(len(view_t), dtype=bool), "view", view_t),
        _view_part(sess, sess.funnel_depth >= 1, "click", click_t),
        _view_part(sess, sess.funnel_depth >= 2, "add_to_cart", cart_t, price),
        _view_part(sess, sess.funnel_depth >= 3, "purchase", buy_t, price),
    ]
    # ratings arrive days after the purchase, outside any session (session -1 -> NULL)
    rated = (sess.funnel_depth >= 3) & (rng.random(len(view_t)) < FUNNEL["rate"])
    rate_t = buy_t + rng.uniform(1.0, 4.0, len(view_t)) * 86_400.0
    stars = rng.choice(np.arange(1, 6), len(view_t), p=_RATINGS_P).astype(np.float64)
    rating = _view_part(sess, rated, "rate", rate_t, stars)
    rating["session"] = np.full(int(rated.sum()), -1)
    return [*parts, rating]


def _view_part(
    sess: Sessions, mask: np.ndarray, kind: str, t: np.ndarray, value: np.ndarray | None = None
) -> _Part:
    """Events of type ``kind`` for the views ``mask`` selects, at times ``t`` (seconds after the start)."""
    n = int(mask.sum())
    return {
        "session": sess.view_session[mask],
        "user": sess.user[sess.view_session[mask]],
        "item": sess.view_item[mask],
        "type": np.full(n, _TYPE_CODE[kind]),
        "t": t[mask],
        "value": np.full(n, np.nan) if value is None else value[mask],
    }


def _search_part(sess: Sessions) -> _Part:
    """A search (no item) at the start of every session that opens with one."""
    searching = np.flatnonzero(sess.search)
    return {
        "session": searching,
        "user": sess.user[searching],
        "item": np.full(len(searching), -1),
        "type": np.full(len(searching), _TYPE_CODE["search"]),
        "t": sess.start_s[searching],
        "value": np.full(len(searching), np.nan),
    }


def _queries(rng: np.random.Generator, cats: np.ndarray, categories: Sequence[Category]) -> np.ndarray:
    """Search text from the category's words: a product noun, sometimes with an adjective or the category."""
    vocab: list[str] = []
    offsets = [0]
    for c in categories:
        words = [n.lower() for n in c.nouns]
        words += [f"{a} {n}".lower() for a in c.adjectives[:2] for n in c.nouns[:3]]
        words += [c.name.lower(), f"best {c.name.lower()}"]
        vocab.extend(words)
        offsets.append(len(vocab))
    starts = np.asarray(offsets[:-1])[cats]
    sizes = np.diff(offsets)[cats]
    pick = starts + (rng.random(len(cats)) * sizes).astype(np.int64)
    return np.asarray(vocab, dtype=object)[pick]
