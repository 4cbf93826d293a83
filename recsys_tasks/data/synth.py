"""Synthetic behaviour data for demos, tests and benchmarks, and its bulk load into a warehouse.

``generate`` returns canonical events and items frames (``data.EVENT_COLUMNS``,
``data.ITEM_COLUMNS``) with the structure a sequential recommender should find:

* item popularity is Zipf-like, so most-popular is a fair baseline;
* each user has 1-3 category interests, and one of them drifts to a new category at a per-user
  time (blended in over a week), so recent behaviour matters more than old behaviour;
* users come back in sessions (minutes between events inside one, hours to days between them);
* inside a session the next viewed item mostly follows a latent successor structure — each item
  has three fixed successors in its own category — so the previous item predicts the next one far
  better than popularity does;
* every view may go down the funnel click -> add_to_cart -> purchase (value = price), and some
  purchases are rated (value 1..5) one to four days later, outside any session (session_id NULL);
  sessions may open with a search (item_id NULL, query = category words).

``load`` creates the warehouse source tables (``sql/schema/create_source_tables.<dialect>.sql``)
and bulk loads the frames: COPY through psycopg 3 on PostgreSQL, chunked executemany elsewhere.

``python -m recsys_tasks.synth --url URL`` does both for a demo warehouse.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import sqlalchemy as sa

from recsys_tasks.config import EVENT_TYPES, ConfigError, RecsysConfig, WarehouseConfig
from recsys_tasks.data import sources
from recsys_tasks.data.sequences import EVENT_COLUMNS, ITEM_COLUMNS
from recsys_tasks.timeutil import utc

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Category:
    name: str
    nouns: tuple[str, ...]
    adjectives: tuple[str, ...]
    price: float  # median price; item prices are log-normal around it


# Nouns are distinct across categories, which (with a per-category serial number) keeps titles unique.
CATEGORIES: tuple[_Category, ...] = tuple(
    _Category(name, tuple(nouns.split(", ")), tuple(adjs.split(", ")), price)
    for name, nouns, adjs, price in (
        ("Running", "Trail Running Shoes, Running Shorts, Running Vest, Compression Socks, Hydration Belt",
         "Swift, Ultra, Tempo, Endurance, Featherlight", 70.0),
        ("Audio", "Noise-cancelling Headphones, Earbuds, Bluetooth Speaker, Soundbar, Turntable",
         "Studio, Bass, Pure, Wireless, Hi-Fi", 120.0),
        ("Cameras", "Mirrorless Camera, Prime Lens, Zoom Lens, Camera Tripod, Camera Bag",
         "Pro, Compact, Street, Wide, Tele", 450.0),
        ("Coffee", "Espresso Machine, Burr Grinder, Pour-over Kettle, Coffee Beans, Milk Frother",
         "Barista, Single-origin, Dark Roast, Classic, Precision", 40.0),
        ("Cookware", "Cast Iron Skillet, Dutch Oven, Chef's Knife, Saucepan, Wok",
         "Copper, Enamelled, Nonstick, Forged, Carbon", 60.0),
        ("Camping", "Dome Tent, Sleeping Bag, Camp Stove, Headlamp, Trekking Poles",
         "Alpine, Ultralight, Basecamp, Four-season, Compact", 90.0),
        ("Cycling", "Road Bike Helmet, Bike Lights, Cycling Jersey, Bike Pump, Saddle Bag",
         "Aero, Gravel, Velo, Climber, Commuter", 55.0),
        ("Yoga", "Yoga Mat, Yoga Block, Meditation Cushion, Yoga Strap, Yoga Leggings",
         "Lotus, Balance, Zen, Flow, Grounded", 30.0),
        ("Gaming", "Mechanical Keyboard, Gaming Mouse, Gaming Headset, Controller, Capture Card",
         "RGB, Tournament, Phantom, Turbo, Stealth", 80.0),
        ("Laptops", "Ultrabook, Laptop Stand, USB-C Dock, Laptop Sleeve, Cooling Pad",
         "Slim, Creator, Business, Carbon, Air", 300.0),
        ("Phones", "Phone Case, Screen Protector, Wireless Charger, Power Bank, Car Mount",
         "Rugged, Clear, MagFit, Fast, Mini", 25.0),
        ("Books", "Mystery Novel, Cookbook, Travel Guide, Poetry Collection, Graphic Novel",
         "Bestselling, Illustrated, Annotated, Hardcover, Pocket", 18.0),
        ("Board Games", "Strategy Board Game, Card Game, Party Game, Jigsaw Puzzle, Dice Set",
         "Family, Epic, Cooperative, Deluxe, Travel", 35.0),
        ("Gardening", "Pruning Shears, Raised Bed, Watering Can, Garden Gloves, Seed Kit",
         "Heirloom, Organic, Cottage, Urban, Evergreen", 28.0),
        ("Skincare", "Face Serum, Moisturiser, Sunscreen, Cleansing Balm, Eye Cream",
         "Hydrating, Vitamin C, Gentle, Radiance, Daily", 24.0),
        ("Fragrance", "Eau de Parfum, Body Mist, Scented Candle, Diffuser Oil, Cologne",
         "Amber, Citrus, Midnight, Cedar, Velvet", 50.0),
        ("Watches", "Dive Watch, Smartwatch, Field Watch, Watch Strap, Chronograph",
         "Automatic, Titanium, Heritage, Sport, Solar", 200.0),
        ("Home Office", "Ergonomic Chair, Standing Desk, Monitor Arm, Desk Lamp, Desk Mat",
         "Ergo, Oak, Minimal, Adjustable, Studio", 150.0),
        ("Tea", "Loose-leaf Green Tea, Matcha Powder, Teapot, Tea Infuser, Chai Blend",
         "Ceremonial, Smoky, First Flush, Jasmine, Spiced", 15.0),
        ("Baby", "Baby Carrier, Stroller, Baby Monitor, Swaddle Blanket, High Chair",
         "Cosy, Snug, Organic Cotton, Convertible, Travel", 85.0),
        ("Pets", "Dog Harness, Cat Tree, Pet Bed, Chew Toy, Automatic Feeder",
         "Pawsome, Durable, Calming, Orthopaedic, Playful", 32.0),
        ("Fitness", "Adjustable Dumbbells, Kettlebell, Resistance Bands, Pull-up Bar, Foam Roller",
         "Iron, Core, Power, Flex, Compact", 65.0),
        ("Swimming", "Swim Goggles, Swim Cap, Kickboard, Wetsuit, Swim Fins",
         "Anti-fog, Open-water, Racing, Junior, Pool", 26.0),
        ("Music", "Acoustic Guitar, Guitar Strings, Digital Piano, Ukulele, Drum Pads",
         "Vintage, Concert, Studio, Folk, Electric", 140.0),
        ("Art Supplies", "Watercolour Set, Sketchbook, Fineliner Pens, Acrylic Paints, Easel",
         "Artist-grade, Travel, Pastel, Professional, Student", 22.0),
        ("Lighting", "Floor Lamp, Smart Bulb, LED Strip, Pendant Light, Night Light",
         "Warm White, Nordic, Dimmable, Industrial, Ambient", 45.0),
        ("Bedding", "Duvet Cover, Memory Foam Pillow, Weighted Blanket, Linen Sheets, Mattress Topper",
         "Cloud, Cooling, Washed Linen, Percale, Hotel", 75.0),
        ("Travel", "Carry-on Suitcase, Packing Cubes, Travel Pillow, Passport Wallet, Travel Adapter",
         "Globetrotter, Hardshell, Weekender, Nomad, Compact", 60.0),
        ("Outdoor Clothing", "Rain Jacket, Fleece Pullover, Down Vest, Hiking Pants, Merino Base Layer",
         "Storm, Summit, Glacier, Ridge, Trailhead", 95.0),
        ("Snacks", "Protein Bar, Trail Mix, Dark Chocolate, Granola, Rice Crackers",
         "Salted, Crunchy, Honey, Sea Salt, Spicy", 6.0),
        ("Smart Home", "Video Doorbell, Smart Plug, Robot Vacuum, Thermostat, Security Camera",
         "Connected, Voice, Eco, Matter-ready, Indoor", 110.0),
        ("Tools", "Cordless Drill, Tool Box, Laser Level, Socket Set, Multimeter",
         "Heavy-duty, Brushless, Workshop, Precision, Pocket", 70.0),
    )
)

# Behaviour parameters. They are not configuration: tests and demos rely on the structure they give.
_FUNNEL = {"click": 0.35, "add_to_cart": 0.30, "purchase": 0.50, "rate": 0.30}  # P(step | previous step)
_RATINGS_P = (0.05, 0.07, 0.15, 0.33, 0.40)  # P(rating = 1..5)
_SESSION_LENGTH_P = 0.22  # viewed items per session ~ Geometric(p), capped at _MAX_SESSION_ITEMS
_MAX_SESSION_ITEMS = 30
_FOLLOW_SUCCESSOR = 0.8  # P(next item is one of the previous item's successors)
_SUCCESSOR_P = (0.6, 0.25, 0.15)
_EXPLORE = 0.1  # P(a session is about a random category rather than an interest)
_SEARCH_P = 0.35  # P(a session opens with a search)
_NEW_ITEM_SHARE = 0.1  # items created inside [start, end)
_DRIFT_RAMP_S = 7 * 86_400.0  # a drifted interest takes over within a week
_SESSION_GAP_S = 1_800.0  # at least half an hour between two sessions of one user
_ZIPF_EXPONENT = 1.15


def generate(
    *,
    n_users: int,
    n_items: int,
    start: datetime,
    end: datetime,
    events_per_user_per_day: float,
    seed: int,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Canonical ``(events, items)`` frames of synthetic behaviour in ``[start, end)``, same seed -> same frames."""
    if n_users < 1 or n_items < 1:
        raise ValueError("n_users and n_items must be at least 1")
    if events_per_user_per_day <= 0:
        raise ValueError("events_per_user_per_day must be positive")
    start_ts, end_ts = utc(start), utc(end)
    if end_ts <= start_ts:
        raise ValueError(f"end ({end_ts}) must be after start ({start_ts})")
    rng = np.random.default_rng(seed)
    span_s = (end_ts - start_ts).total_seconds()

    catalogue = _make_catalogue(rng, n_items, span_s)
    users = _make_users(rng, n_users, catalogue, span_s)
    sessions = _make_sessions(rng, users, catalogue, span_s, events_per_user_per_day)
    events = _make_events(rng, sessions, catalogue, users, start_ts, span_s)
    items = _items_frame(rng, catalogue, start_ts)
    logger.info(
        "generated %d events (%d sessions) for %d users over %d items in %d categories",
        len(events), len(sessions.user), n_users, n_items, len(catalogue.categories),
    )
    return events, items


# --------------------------------------------------------------------------------------- catalogue


@dataclass
class _Catalogue:
    categories: tuple[_Category, ...]
    item_cat: np.ndarray  # (I,) category index of each item
    weight: np.ndarray  # (I,) Zipf popularity weight
    price: np.ndarray  # (I,)
    successors: np.ndarray  # (I, 3) item indices
    launch_s: np.ndarray  # (I,) seconds after the window start when the item appears (< 0: before it)
    fallback: np.ndarray  # (C,) an item of each category that exists from the start
    cat_mass: np.ndarray  # (C,) share of popularity per category
    popular: _CategorySampler  # draws an item of a category by popularity
    ids: np.ndarray  # (I + 1,) object: item id strings, then None (index -1 = no item)


class _CategorySampler:
    """Draws items inside given categories with probability proportional to per-item weights.

    Items are laid out by category; key = category + cumulative share inside the category, which is
    increasing overall, so one ``searchsorted`` serves every category at once.
    """

    def __init__(self, item_cat: np.ndarray, weight: np.ndarray) -> None:
        self.order = np.argsort(item_cat, kind="stable")
        cat_sorted = item_cat[self.order]
        w = weight[self.order]
        cum = np.cumsum(w)
        first = np.flatnonzero(np.r_[True, cat_sorted[1:] != cat_sorted[:-1]])
        last = np.r_[first[1:] - 1, len(w) - 1]
        before = np.repeat(np.r_[0.0, cum[last[:-1]]], np.diff(np.r_[first, len(w)]))
        totals = np.repeat(cum[last] - np.r_[0.0, cum[last[:-1]]], np.diff(np.r_[first, len(w)]))
        share = (cum - before) / totals
        share[last] = 1.0  # exact, so that category + u (u < 1) never lands in the next category
        self.key = cat_sorted + share

    def draw(self, rng: np.random.Generator, cats: np.ndarray) -> np.ndarray:
        u = rng.random(len(cats))
        pos = np.searchsorted(self.key, cats + u, side="right")
        return self.order[pos]


def _make_catalogue(rng: np.random.Generator, n_items: int, span_s: float) -> _Catalogue:
    n_cat = min(len(CATEGORIES), max(1, n_items // 8))
    categories = CATEGORIES[:n_cat]
    # every category gets at least one item; the rest by uneven category sizes
    sizes_p = rng.dirichlet(np.full(n_cat, 2.0))
    item_cat = np.concatenate([np.arange(n_cat), rng.choice(n_cat, n_items - n_cat, p=sizes_p)])
    item_cat = rng.permutation(item_cat)
    rank = rng.permutation(n_items)
    weight = 1.0 / (rank + 1.0) ** _ZIPF_EXPONENT
    median_price = np.array([c.price for c in categories])[item_cat]
    price = np.round(median_price * rng.lognormal(0.0, 0.45, n_items), 2).clip(0.99)

    # successors: same category, drawn by sqrt-popularity so that chains reach the long tail too
    succ_sampler = _CategorySampler(item_cat, np.sqrt(weight))
    successors = succ_sampler.draw(rng, np.repeat(item_cat, 3)).reshape(n_items, 3)
    cat_size = np.bincount(item_cat, minlength=n_cat)
    for _ in range(10):  # redraw self-successors where the category has other items
        own = (successors == np.arange(n_items)[:, None]) & (cat_size[item_cat] > 1)[:, None]
        if not own.any():
            break
        rows, cols = np.nonzero(own)
        successors[rows, cols] = succ_sampler.draw(rng, item_cat[rows])

    # most of the catalogue predates the window; new items launch inside it (cold-start items)
    launch_s = -rng.uniform(1.0, 365.0, n_items) * 86_400.0
    new = rng.random(n_items) < _NEW_ITEM_SHARE
    launch_s[new] = rng.uniform(0.0, span_s, int(new.sum()))
    launch_s = np.floor(launch_s)  # catalogue timestamps to the second
    # per category, its most popular item among the earliest launched (never absent)
    by_cat = np.lexsort((-weight, np.maximum(launch_s, 0.0), item_cat))
    fallback = by_cat[np.searchsorted(item_cat[by_cat], np.arange(n_cat))]

    cat_mass = np.bincount(item_cat, weights=weight, minlength=n_cat)
    cat_mass /= cat_mass.sum()
    width = max(5, len(str(n_items - 1)))
    ids = np.array([f"i{i:0{width}d}" for i in range(n_items)] + [None], dtype=object)
    return _Catalogue(
        categories=categories,
        item_cat=item_cat,
        weight=weight,
        price=price,
        successors=successors,
        launch_s=launch_s,
        fallback=fallback,
        cat_mass=cat_mass,
        popular=_CategorySampler(item_cat, weight),
        ids=ids,
    )


def _items_frame(rng: np.random.Generator, cat: _Catalogue, start: datetime) -> pd.DataFrame:
    n_items = len(cat.item_cat)
    titles = np.empty(n_items, dtype=object)
    serial = np.zeros(len(cat.categories), dtype=np.int64)
    base = rng.integers(1, 40, len(cat.categories))
    styles = rng.integers(0, 4, n_items)
    adj_pick = rng.integers(0, 1 << 30, n_items)
    noun_pick = rng.integers(0, 1 << 30, n_items)
    for i in range(n_items):
        c = cat.item_cat[i]
        category = cat.categories[c]
        n = int(base[c] + serial[c])  # unique inside the category -> unique title
        serial[c] += 1
        model = (f"{n}", f"X{n}", f"Mk {n}", f"{n} Pro")[styles[i]]
        adj = category.adjectives[adj_pick[i] % len(category.adjectives)]
        noun = category.nouns[noun_pick[i] % len(category.nouns)]
        titles[i] = f"{adj} {noun} {model}"

    created = _epoch_us(start) + (cat.launch_s * 1e6).astype(np.int64)
    return pd.DataFrame(
        {
            "item_id": cat.ids[:-1],
            "title": titles,
            "category": np.array([c.name for c in cat.categories], dtype=object)[cat.item_cat],
            "created_at": pd.to_datetime(created, unit="us", utc=True),
        },
        columns=list(ITEM_COLUMNS),
    )


# ------------------------------------------------------------------------------------------- users


@dataclass
class _Users:
    ids: np.ndarray  # (U,) object
    activity: np.ndarray  # (U,) mean-1 multiplier of the event rate
    before: np.ndarray  # (U, 3) interest categories before the drift
    after: np.ndarray  # (U, 3) interest categories after the drift
    slot_p: np.ndarray  # (U, 3) probability of each interest slot (0 for unused slots)
    drift_s: np.ndarray  # (U,) seconds after start when the drift begins (may lie beyond the window)


def _make_users(rng: np.random.Generator, n_users: int, cat: _Catalogue, span_s: float) -> _Users:
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
    return _Users(ids, activity, before, after, slot_p, drift_s)


# ---------------------------------------------------------------------------------------- sessions


@dataclass
class _Sessions:
    user: np.ndarray  # (S,) user index, sessions sorted by user then time
    start_s: np.ndarray  # (S,) seconds after the window start (overlaps resolved)
    view_session: np.ndarray  # (V,) session of each view, sorted by session then step
    view_item: np.ndarray  # (V,)
    view_offset_s: np.ndarray  # (V,) seconds after the session start
    funnel_delay_s: np.ndarray  # (V, 3) delays click/cart/purchase after the previous funnel step
    funnel_depth: np.ndarray  # (V,) 0 view only, 1 click, 2 cart, 3 purchase
    search: np.ndarray  # (S,) bool: the session opens with a search
    category: np.ndarray  # (S,)


def _expected_events_per_session() -> float:
    q = 1.0 - _SESSION_LENGTH_P
    length = (1.0 - q**_MAX_SESSION_ITEMS) / _SESSION_LENGTH_P  # mean of the capped geometric
    click = _FUNNEL["click"]
    cart = click * _FUNNEL["add_to_cart"]
    purchase = cart * _FUNNEL["purchase"]
    per_view = 1.0 + click + cart + purchase + purchase * _FUNNEL["rate"]
    return length * per_view + _SEARCH_P


def _make_sessions(
    rng: np.random.Generator, users: _Users, cat: _Catalogue, span_s: float, rate: float
) -> _Sessions:
    n_users = len(users.ids)
    days = span_s / 86_400.0
    n_sess = rng.poisson(rate * days * users.activity / _expected_events_per_session())
    user = np.repeat(np.arange(n_users), n_sess)
    n = len(user)
    start_s = rng.uniform(0.0, span_s, n)
    order = np.lexsort((start_s, user))
    start_s = start_s[order]

    # what each session is about: an interest (drifted or not), sometimes anything
    slot = _choose_rows(rng, users.slot_p[user])
    drift_share = np.clip((start_s - users.drift_s[user]) / _DRIFT_RAMP_S, 0.0, 1.0)
    drifted = rng.random(n) < drift_share
    category = np.where(drifted, users.after[user, slot], users.before[user, slot])
    explore = rng.random(n) < _EXPLORE
    category[explore] = rng.choice(len(cat.cat_mass), int(explore.sum()), p=cat.cat_mass)

    length = np.minimum(rng.geometric(_SESSION_LENGTH_P, n), _MAX_SESSION_ITEMS)
    search = rng.random(n) < _SEARCH_P

    # walk the successor structure, one step for every still-running session at a time
    steps: list[tuple[np.ndarray, np.ndarray]] = []
    current = np.empty(n, dtype=np.int64)
    for step in range(int(length.max()) if n else 0):
        active = np.flatnonzero(length > step)
        if step == 0:
            nxt = cat.popular.draw(rng, category[active])
        else:
            prev = current[active]
            which = _choose(rng, _SUCCESSOR_P, len(active))
            nxt = cat.successors[prev, which]
            jump = rng.random(len(active)) >= _FOLLOW_SUCCESSOR
            nxt[jump] = cat.popular.draw(rng, category[active[jump]])
        # only items launched by the session start; the session never starts earlier (overlaps only delay it)
        for _ in range(5):
            unborn = np.flatnonzero(cat.launch_s[nxt] > start_s[active])
            if not len(unborn):
                break
            nxt[unborn] = cat.popular.draw(rng, category[active[unborn]])
        else:
            unborn = cat.launch_s[nxt] > start_s[active]
            nxt[unborn] = cat.fallback[category[active[unborn]]]
        current[active] = nxt
        steps.append((active, nxt))
    view_session = np.concatenate([a for a, _ in steps]) if steps else np.zeros(0, np.int64)
    view_step = np.concatenate([np.full(len(a), s) for s, (a, _) in enumerate(steps)]) if steps else view_session
    view_item = np.concatenate([i for _, i in steps]) if steps else view_session
    order = np.lexsort((view_step, view_session))
    view_session, view_item = view_session[order], view_item[order]
    v = len(view_session)

    # funnel depth and delays between its steps (seconds)
    u = rng.random((v, 3))
    depth = (u[:, 0] < _FUNNEL["click"]).astype(np.int64)
    depth += (depth == 1) & (u[:, 1] < _FUNNEL["add_to_cart"])
    depth += (depth == 2) & (u[:, 2] < _FUNNEL["purchase"])
    delay = np.column_stack([rng.uniform(3, 40, v), rng.uniform(5, 90, v), rng.uniform(20, 300, v)])
    spent = np.where(np.arange(3)[None, :] < depth[:, None], delay, 0.0).sum(axis=1)

    # view time inside the session: previous view + its funnel + reading time; a search comes first
    gap = spent + 5.0 + rng.exponential(75.0, v)
    first = np.r_[True, view_session[1:] != view_session[:-1]] if v else np.zeros(0, bool)
    lead = np.where(search[view_session], rng.uniform(5.0, 40.0, v), 0.0)
    step_gap = np.where(first, lead, np.r_[0.0, gap[:-1]])
    offset = _grouped_cumsum(step_gap, first)
    duration = np.zeros(n)
    if v:
        np.maximum.at(duration, view_session, offset + spent)

    # no overlapping sessions for one user: push a session back to after the previous one ended
    taken = duration + _SESSION_GAP_S
    user_first = np.r_[True, user[1:] != user[:-1]] if n else np.zeros(0, bool)
    before_k = _grouped_cumsum(np.where(user_first, 0.0, np.r_[0.0, taken[:-1]]), user_first)
    slack = pd.Series(start_s - before_k).groupby(user).cummax().to_numpy()
    start_s = before_k + slack

    return _Sessions(user, start_s, view_session, view_item, offset, delay, depth, search, category)


def _make_events(
    rng: np.random.Generator, sess: _Sessions, cat: _Catalogue, users: _Users, start: datetime, span_s: float
) -> pd.DataFrame:
    type_code = {name: i for i, name in enumerate(EVENT_TYPES)}
    view_t = sess.start_s[sess.view_session] + sess.view_offset_s
    parts: list[dict[str, np.ndarray]] = []

    def add(mask: np.ndarray, kind: str, t: np.ndarray, value: np.ndarray | None = None) -> None:
        n = int(mask.sum())
        parts.append({
            "session": sess.view_session[mask],
            "user": sess.user[sess.view_session[mask]],
            "item": sess.view_item[mask],
            "type": np.full(n, type_code[kind]),
            "t": t[mask],
            "value": np.full(n, np.nan) if value is None else value[mask],
        })

    everyone = np.ones(len(view_t), dtype=bool)
    click_t = view_t + sess.funnel_delay_s[:, 0]
    cart_t = click_t + sess.funnel_delay_s[:, 1]
    buy_t = cart_t + sess.funnel_delay_s[:, 2]
    price = cat.price[sess.view_item]
    add(everyone, "view", view_t)
    add(sess.funnel_depth >= 1, "click", click_t)
    add(sess.funnel_depth >= 2, "add_to_cart", cart_t, price)
    add(sess.funnel_depth >= 3, "purchase", buy_t, price)
    # ratings arrive days after the purchase, outside any session (session -1 -> NULL)
    rated = (sess.funnel_depth >= 3) & (rng.random(len(view_t)) < _FUNNEL["rate"])
    rate_t = buy_t + rng.uniform(1.0, 4.0, len(view_t)) * 86_400.0
    stars = rng.choice(np.arange(1, 6), len(view_t), p=_RATINGS_P).astype(np.float64)
    add(rated, "rate", rate_t, stars)
    parts[-1]["session"] = np.full(int(rated.sum()), -1)

    searching = np.flatnonzero(sess.search)
    parts.append({
        "session": searching,
        "user": sess.user[searching],
        "item": np.full(len(searching), -1),
        "type": np.full(len(searching), type_code["search"]),
        "t": sess.start_s[searching],
        "value": np.full(len(searching), np.nan),
    })
    session, user, item, kind, t, value = (
        np.concatenate([p[key] for p in parts]) for key in ("session", "user", "item", "type", "t", "value")
    )

    # keep [start, end): microsecond timestamps, events at or after the end are dropped
    t_us = np.floor(t * 1e6).astype(np.int64)
    keep = t_us < int(round(span_s * 1e6))
    session, item, kind, t_us, value, user = (a[keep] for a in (session, item, kind, t_us, value, user))
    order = np.lexsort((kind, item, user, t_us))
    session, item, kind, t_us, value, user = (a[order] for a in (session, item, kind, t_us, value, user))
    n = len(t_us)

    queries = np.full(n, None, dtype=object)
    is_search = kind == type_code["search"]
    if is_search.any():
        queries[is_search] = _queries(rng, sess.category[session[is_search]], cat.categories)
    width = max(7, len(str(len(sess.user))))
    session_ids = np.array([f"s{s:0{width}d}" for s in range(len(sess.user))] + [None], dtype=object)
    id_width = max(9, len(str(n)))
    return pd.DataFrame(
        {
            "event_id": np.array([f"e{i:0{id_width}d}" for i in range(n)], dtype=object),
            "user_id": users.ids[user],
            "item_id": cat.ids[item],
            "event_type": np.array(EVENT_TYPES, dtype=object)[kind],
            "event_ts": pd.to_datetime(_epoch_us(start) + t_us, unit="us", utc=True),
            "value": value,
            "query": queries,
            "session_id": session_ids[session],
        },
        columns=list(EVENT_COLUMNS),
    )


def _queries(rng: np.random.Generator, cats: np.ndarray, categories: Sequence[_Category]) -> np.ndarray:
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


# ----------------------------------------------------------------------------------------- helpers



def _epoch_us(value: datetime) -> int:
    return (pd.Timestamp(value) - _EPOCH) // pd.Timedelta(microseconds=1)


_EPOCH = pd.Timestamp(0, tz="UTC")


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


# --------------------------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    """Generate a synthetic warehouse and load it: ``python -m recsys_tasks.synth --url URL``."""
    parser = argparse.ArgumentParser(prog="python -m recsys_tasks.synth", description=main.__doc__)
    parser.add_argument("--url", required=True, help="SQLAlchemy URL of the warehouse, e.g. sqlite:///var/demo.db")
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--days", type=int, default=30, help="length of the window that ends at --end")
    parser.add_argument("--end", default="2026-01-31", help="exclusive end of the window (UTC date or ISO time)")
    parser.add_argument("--events-per-user-per-day", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--replace", action="store_true", help="empty the source tables before loading")
    parser.add_argument("--config", help="RecsysConfig YAML/JSON file whose warehouse section names the tables")
    parser.add_argument("--schema", help="source schema (overrides the config's warehouse.source_schema)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    try:
        warehouse = RecsysConfig.from_file(args.config).warehouse if args.config else WarehouseConfig()
        if args.schema:
            warehouse = dataclasses.replace(warehouse, source_schema=args.schema)
    except ConfigError as exc:
        parser.error(str(exc))
    end = utc(args.end)
    start = end - timedelta(days=args.days)

    began = time.perf_counter()
    events, items = generate(
        n_users=args.users,
        n_items=args.items,
        start=start,
        end=end,
        events_per_user_per_day=args.events_per_user_per_day,
        seed=args.seed,
    )
    generated = time.perf_counter()
    logger.info("generated %d events and %d items for [%s, %s) in %.1f s",
                len(events), len(items), start.isoformat(), end.isoformat(), generated - began)
    engine = sa.create_engine(args.url)
    try:
        sources.load(engine, events, items, warehouse=warehouse, create=True, replace=args.replace)
    finally:
        engine.dispose()
    logger.info("done in %.1f s (generate %.1f s, load %.1f s) -> %s",
                time.perf_counter() - began, generated - began, time.perf_counter() - generated,
                sa.engine.make_url(args.url).render_as_string(hide_password=True))
    return 0


__all__ = [
    "CATEGORIES",
    "SynthDataError",
    "create_source_tables",
    "generate",
    "load",
    "main",
    "source_table_identifiers",
]

if __name__ == "__main__":
    raise SystemExit(main())
