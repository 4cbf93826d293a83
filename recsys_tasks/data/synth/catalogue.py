"""The synthetic shop's catalogue: categories, items with Zipf popularity, prices, launch times and
the latent successor structure that sessions walk along (see :mod:`recsys_tasks.data.synth`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from recsys_tasks.data.sequences import ITEM_COLUMNS

_NEW_ITEM_SHARE = 0.1  # items created inside [start, end)
_ZIPF_EXPONENT = 1.15
_EPOCH = pd.Timestamp(0, tz="UTC")


@dataclass(frozen=True)
class Category:
    """A shop category and the words its item titles and search queries are made of."""

    name: str
    nouns: tuple[str, ...]
    adjectives: tuple[str, ...]
    price: float  # median price; item prices are log-normal around it


# Nouns are distinct across categories, which (with a per-category serial number) keeps titles unique.
CATEGORIES: tuple[Category, ...] = tuple(
    Category(name, tuple(nouns.split(", ")), tuple(adjs.split(", ")), price)
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


class CategorySampler:
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
        """One item index per entry of ``cats`` (category indices)."""
        u = rng.random(len(cats))
        pos = np.searchsorted(self.key, cats + u, side="right")
        return self.order[pos]


@dataclass
class Catalogue:
    """The generated items as parallel arrays, indexed by item."""

    categories: tuple[Category, ...]
    item_cat: np.ndarray  # (I,) category index of each item
    weight: np.ndarray  # (I,) Zipf popularity weight
    price: np.ndarray  # (I,)
    successors: np.ndarray  # (I, 3) item indices
    launch_s: np.ndarray  # (I,) seconds after the window start when the item appears (< 0: before it)
    fallback: np.ndarray  # (C,) an item of each category that exists from the start
    cat_mass: np.ndarray  # (C,) share of popularity per category
    popular: CategorySampler  # draws an item of a category by popularity
    ids: np.ndarray  # (I + 1,) object: item id strings, then None (index -1 = no item)


def make_catalogue(rng: np.random.Generator, n_items: int, span_s: float) -> Catalogue:
    """``n_items`` items in up to ``len(CATEGORIES)`` categories, some launched inside the window."""
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
    successors = _successors(rng, item_cat, weight, n_cat)

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
    return Catalogue(
        categories=categories,
        item_cat=item_cat,
        weight=weight,
        price=price,
        successors=successors,
        launch_s=launch_s,
        fallback=fallback,
        cat_mass=cat_mass,
        popular=CategorySampler(item_cat, weight),
        ids=ids,
    )


def _successors(rng: np.random.Generator, item_cat: np.ndarray, weight: np.ndarray, n_cat: int) -> np.ndarray:
    """(I, 3) successors per item, in its category, by sqrt-popularity so chains reach the long tail too."""
    n_items = len(item_cat)
    sampler = CategorySampler(item_cat, np.sqrt(weight))
    successors = sampler.draw(rng, np.repeat(item_cat, 3)).reshape(n_items, 3)
    cat_size = np.bincount(item_cat, minlength=n_cat)
    for _ in range(10):  # redraw self-successors where the category has other items
        own = (successors == np.arange(n_items)[:, None]) & (cat_size[item_cat] > 1)[:, None]
        if not own.any():
            break
        rows, cols = np.nonzero(own)
        successors[rows, cols] = sampler.draw(rng, item_cat[rows])
    return successors


def items_frame(rng: np.random.Generator, cat: Catalogue, start: datetime) -> pd.DataFrame:
    """The canonical items frame: unique titles from the category's words, ``created_at`` = launch time."""
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

    created = epoch_us(start) + (cat.launch_s * 1e6).astype(np.int64)
    return pd.DataFrame(
        {
            "item_id": cat.ids[:-1],
            "title": titles,
            "category": np.array([c.name for c in cat.categories], dtype=object)[cat.item_cat],
            "created_at": pd.to_datetime(created, unit="us", utc=True),
        },
        columns=list(ITEM_COLUMNS),
    )


def epoch_us(value: datetime) -> int:
    """Microseconds since the Unix epoch of an aware ``value`` (the generator's integer time base)."""
    return (pd.Timestamp(value) - _EPOCH) // pd.Timedelta(microseconds=1)
