"""A shop with a new-items segment: what item text buys when an item has no history (issue 15).

    shop = new_items_shop(n_users=3_000, n_items=1_500, seed=0)   # or: bench --data synthetic:shop

Built on :func:`recsys_tasks.data.synth.generate`: its views become (user, item, ts) interactions, the
leave-one-out benchmark's input, and its catalogue's titles and categories become item texts. A share
of the catalogue (``new_share``, drawn uniformly) is "launched late": every interaction with such an
item is dropped except where it is a user's last. Under leave-one-out the last item is the test
target, so these targets are items no training sequence contains, while their text is known (and
names the category the user's session walks in). Same seed, same shop.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from recsys_tasks.data.synth import generate
from recsys_tasks.modeling.text import item_text

_END = datetime(2026, 1, 31, tzinfo=UTC)  # fixed, so the shop does not depend on the day it is built


@dataclass(frozen=True)
class NewItemsShop:
    """Interactions, the text of every catalogue item, and the items launched late."""

    interactions: pd.DataFrame  # user, item (strings), ts (unix seconds); time-ordered per user
    item_text: dict[str, str]  # item id -> "title | category"
    late_items: frozenset[str]  # occur only as some user's last interaction


def new_items_shop(
    *,
    n_users: int = 3_000,
    n_items: int = 1_500,
    days: int = 60,
    events_per_user_per_day: float = 0.5,
    new_share: float = 0.1,
    seed: int = 0,
) -> NewItemsShop:
    """The synthetic shop's views with ``new_share`` of the items seen only as users' last items."""
    if not 0.0 <= new_share < 1.0:
        raise ValueError(f"new_share must be in [0, 1), got {new_share}")
    events, items = generate(
        n_users=n_users, n_items=n_items, start=_END - timedelta(days=days), end=_END,
        events_per_user_per_day=events_per_user_per_day, seed=seed,
    )
    views = events.loc[events["event_type"] == "view", ["user_id", "item_id", "event_ts"]]
    seconds = (views["event_ts"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    frame = pd.DataFrame({
        "user": views["user_id"].to_numpy(dtype=str), "item": views["item_id"].to_numpy(dtype=str),
        "ts": seconds.to_numpy(dtype=np.int64),
    })
    frame = frame.sort_values(["user", "ts"], kind="stable", ignore_index=True)

    rng = np.random.default_rng([seed, 15])  # its own stream: the events above stay those of `generate`
    catalogue = items["item_id"].to_numpy(dtype=str)
    late = frozenset(rng.choice(catalogue, size=round(new_share * len(catalogue)), replace=False).tolist())
    is_last = ~frame["user"].duplicated(keep="last")
    frame = frame[~frame["item"].isin(late) | is_last].reset_index(drop=True)
    rows = zip(items["item_id"], items["title"], items["category"], strict=True)
    texts = {str(item): item_text(title, category) for item, title, category in rows}
    return NewItemsShop(interactions=frame, item_text=texts, late_items=late)


__all__ = ["NewItemsShop", "new_items_shop"]
