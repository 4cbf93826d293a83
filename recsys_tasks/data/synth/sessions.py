"""The synthetic shop's users and their sessions: drifting interests, successor walks, funnels and
non-overlapping session times (see :mod:`recsys_tasks.data.synth`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys_tasks.data.synth.catalogue import Catalogue

# Behaviour parameters. They are not configuration: tests and demos rely on the structure they give.
FUNNEL = {"click": 0.35, "add_to_cart": 0.30, "purchase": 0.50, "rate": 0.30}  # P(step | previous step)
SEARCH_P = 0.35  # P(a session opens with a search)
_SESSION_LENGTH_P = 0.22  # viewed items per session ~ Geometric(p), capped at _MAX_SESSION_ITEMS
_MAX_SESSION_ITEMS = 30
_FOLLOW_SUCCESSOR = 0.8  # P(next item is one of the previous item's successors)
_SUCCESSOR_P = (0.6, 0.25, 0.15)
_EXPLORE = 0.1  # P(a session is about a random category rather than an interest)
_DRIFT_RAMP_S = 7 * 86_400.0  # a drifted interest takes over within a week
_SESSION_GAP_S = 1_800.0  # at least half an hour between two sessions of one user


@dataclass
class Users:
    """The generated users as parallel arrays, indexed by user."""

    ids: np.ndarray  # (U,) object
    activity: np.ndarray  # (U,) mean-1 multiplier of the event rate
    before: np.ndarray  # (U, 3) interest categories before the drift
    after: np.ndarray  # (U, 3) interest categories after the drift
    slot_p: np.ndarray  # (U, 3) probability of each interest slot (0 for unused slots)
    drift_s: np.ndarray  # (U,) seconds after start when the drift begins (may lie beyond the window)


@dataclass
class Sessions:
    """The generated sessions and the views inside them, as parallel arrays."""

    user: np.ndarray  # (S,) user index, sessions sorted by user then time
    start_s: np.ndarray  # (S,) seconds after the window start (overlaps resolved)
    view_session: np.ndarray  # (V,) session of each view, sorted by session then step
    view_item: np.ndarray  # (V,)
    view_offset_s: np.ndarray  # (V,) seconds after the session start
    funnel_delay_s: np.ndarray  # (V, 3) delays click/cart/purchase after the previous funnel step
    funnel_depth: np.ndarray  # (V,) 0 view only, 1 click, 2 cart, 3 purchase
    search: np.ndarray  # (S,) bool: the session opens with a search
    category: np.ndarray  # (S,)


def make_users(rng: np.random.Generator, n_users: int, cat: Catalogue, span_s: float) -> Users:
    """Users with an activity level, 1-3 category interests, and a drift of the main one at a random time."""
    n_cat = len(cat.cat_mass)
    activity = rng.lognormal(0.0, 0.8, n_users)
    activity /= activity.mean()
    # distinct interests by the Gumbel top-k trick, weighted by category popularity
    keys = np.log(cat.cat_mass ** 0.7)[None, :] + rng.gumbel(size=(n_users, n_cat))
    ranked = np.argsort(-keys, axis=1)[:, : min(4, n_cat)]
    if ranked.shape[1] < 4:  # tiny catalogues: repeat categories
        ranked = np.pad(ranked, ((0, 0), (0, 4 - ranked.shape[1])), mode="wrap")
    n_interests = rng.choice([1, 2, 3], n_users, p=[0.4, 0.4, 0.2])
    slot_p = rng.dirichlet(np.full(3, 1.5), n_users) * (np.arange(3)[None, :] < n_interests[:, None])
    slot_p /= slot_p.sum(axis=1, keepdims=True)
    before = ranked[:, :3]
    after = before.copy()
    # the drift replaces the user's main interest with a fourth category
    main = np.argmax(slot_p, axis=1)
    after[np.arange(n_users), main] = ranked[:, 3]
    drift_s = rng.uniform(0.0, 2.0 * span_s, n_users)
    width = max(6, len(str(n_users - 1)))
    ids = np.array([f"u{u:0{width}d}" for u in range(n_users)], dtype=object)
    return Users(ids, activity, before, after, slot_p, drift_s)


def make_sessions(
    rng: np.random.Generator, users: Users, cat: Catalogue, span_s: float, rate: float
) -> Sessions:
    """Every user's sessions over ``span_s`` seconds, about ``rate`` events per user and day in all."""
    days = span_s / 86_400.0
    n_sess = rng.poisson(rate * days * users.activity / _expected_events_per_session())
    user = np.repeat(np.arange(len(users.ids)), n_sess)
    n = len(user)
    start_s = rng.uniform(0.0, span_s, n)
    start_s = start_s[np.lexsort((start_s, user))]
    category = _session_categories(rng, users, cat, user, start_s)
    length = np.minimum(rng.geometric(_SESSION_LENGTH_P, n), _MAX_SESSION_ITEMS)
    search = rng.random(n) < SEARCH_P
    view_session, view_item = _walk(rng, cat, category, start_s, length)
    depth, delay, spent = _funnel(rng, len(view_session))
    offset, duration = _view_offsets(rng, view_session, search, spent, n)
    start_s = _without_overlaps(user, start_s, duration)
    return Sessions(user, start_s, view_session, view_item, offset, delay, depth, search, category)


def _expected_events_per_session() -> float:
    q = 1.0 - _SESSION_LENGTH_P
    length = (1.0 - q**_MAX_SESSION_ITEMS) / _SESSION_LENGTH_P  # mean of the capped geometric
    click = FUNNEL["click"]
    cart = click * FUNNEL["add_to_cart"]
    purchase = cart * FUNNEL["purchase"]
    per_view = 1.0 + click + cart + purchase + purchase * FUNNEL["rate"]
    return length * per_view + SEARCH_P


def _session_categories(
    rng: np.random.Generator, users: Users, cat: Catalogue, user: np.ndarray, start_s: np.ndarray
) -> np.ndarray:
    """What each session is about: an interest (drifted or not), sometimes anything."""
    n = len(user)
    slot = _choose_rows(rng, users.slot_p[user])
    drift_share = np.clip((start_s - users.drift_s[user]) / _DRIFT_RAMP_S, 0.0, 1.0)
    drifted = rng.random(n) < drift_share
    category = np.where(drifted, users.after[user, slot], users.before[user, slot])
    explore = rng.random(n) < _EXPLORE
    category[explore] = rng.choice(len(cat.cat_mass), int(explore.sum()), p=cat.cat_mass)
    return category


def _walk(
    rng: np.random.Generator, cat: Catalogue, category: np.ndarray, start_s: np.ndarray, length: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(view_session, view_item)`` by session then step: every session walks the successor structure."""
    steps: list[tuple[np.ndarray, np.ndarray]] = []
    current = np.empty(len(category), dtype=np.int64)
    # one step for every still-running session at a time
    for step in range(int(length.max()) if len(length) else 0):
        active = np.flatnonzero(length > step)
        if step == 0:
            nxt = cat.popular.draw(rng, category[active])
        else:
            which = _choose(rng, _SUCCESSOR_P, len(active))
            nxt = cat.successors[current[active], which]
            jump = rng.random(len(active)) >= _FOLLOW_SUCCESSOR
            nxt[jump] = cat.popular.draw(rng, category[active[jump]])
        nxt = _launched_by(rng, cat, nxt, category[active], start_s[active])
        current[active] = nxt
        steps.append((active, nxt))
    if not steps:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    view_session = np.concatenate([a for a, _ in steps])
    view_step = np.concatenate([np.full(len(a), s) for s, (a, _) in enumerate(steps)])
    view_item = np.concatenate([i for _, i in steps])
    order = np.lexsort((view_step, view_session))
    return view_session[order], view_item[order]


def _launched_by(
    rng: np.random.Generator, cat: Catalogue, items: np.ndarray, cats: np.ndarray, start_s: np.ndarray
) -> np.ndarray:
    """``items``, those not launched by their session start redrawn in the category (its fallback at last).

    Resolving overlaps later only delays a session, never starts it earlier, so this holds for every view.
    """
    for _ in range(5):
        unborn = np.flatnonzero(cat.launch_s[items] > start_s)
        if not len(unborn):
            return items
        items[unborn] = cat.popular.draw(rng, cats[unborn])
    unborn = cat.launch_s[items] > start_s
    items[unborn] = cat.fallback[cats[unborn]]
    return items


def _funnel(rng: np.random.Generator, v: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(depth, delay, spent)`` of ``v`` views: funnel depth, (V, 3) delays between its steps, their sum."""
    u = rng.random((v, 3))
    depth = (u[:, 0] < FUNNEL["click"]).astype(np.int64)
    depth += (depth == 1) & (u[:, 1] < FUNNEL["add_to_cart"])
    depth += (depth == 2) & (u[:, 2] < FUNNEL["purchase"])
    delay = np.column_stack([rng.uniform(3, 40, v), rng.uniform(5, 90, v), rng.uniform(20, 300, v)])
    spent = np.where(np.arange(3)[None, :] < depth[:, None], delay, 0.0).sum(axis=1)
    return depth, delay, spent


def _view_offsets(
    rng: np.random.Generator, view_session: np.ndarray, search: np.ndarray, spent: np.ndarray, n_sessions: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(offset, duration)``: each view's seconds after its session start, and each session's length.

    A view follows the previous one's funnel plus reading time; a search comes before the first view.
    """
    v = len(view_session)
    gap = spent + 5.0 + rng.exponential(75.0, v)
    first = np.r_[True, view_session[1:] != view_session[:-1]] if v else np.zeros(0, bool)
    lead = np.where(search[view_session], rng.uniform(5.0, 40.0, v), 0.0)
    step_gap = np.where(first, lead, np.r_[0.0, gap[:-1]])
    offset = _grouped_cumsum(step_gap, first)
    duration = np.zeros(n_sessions)
    if v:
        np.maximum.at(duration, view_session, offset + spent)
    return offset, duration


def _without_overlaps(user: np.ndarray, start_s: np.ndarray, duration: np.ndarray) -> np.ndarray:
    """Session starts without overlaps inside one user: a session is pushed back after the previous one."""
    n = len(user)
    taken = duration + _SESSION_GAP_S
    user_first = np.r_[True, user[1:] != user[:-1]] if n else np.zeros(0, bool)
    before_k = _grouped_cumsum(np.where(user_first, 0.0, np.r_[0.0, taken[:-1]]), user_first)
    slack = pd.Series(start_s - before_k).groupby(user).cummax().to_numpy()
    return before_k + slack


def _choose(rng: np.random.Generator, p: Sequence[float], n: int) -> np.ndarray:
    return np.searchsorted(np.cumsum(p)[:-1], rng.random(n), side="right")


def _choose_rows(rng: np.random.Generator, p: np.ndarray) -> np.ndarray:
    """One column index per row of the row-stochastic matrix ``p``."""
    cum = np.cumsum(p, axis=1)
    u = rng.random(len(p))[:, None] * cum[:, -1:]
    return np.minimum((cum <= u).sum(axis=1), p.shape[1] - 1)


def _grouped_cumsum(values: np.ndarray, group_start: np.ndarray) -> np.ndarray:
    """Cumulative sum restarting where ``group_start`` is True (rows are grouped contiguously)."""
    if not len(values):
        return values.astype(np.float64)
    total = np.cumsum(values)
    starts = np.flatnonzero(group_start)
    base = total[starts] - values[starts]
    return total - np.repeat(base, np.diff(np.r_[starts, len(values)]))
