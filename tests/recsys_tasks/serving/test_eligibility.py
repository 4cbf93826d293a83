"""Only catalogue items are ranked, and the shortest list each user can get is computed by hand.

A popularity recommender over items a..f whose most popular item, ``e``, has left the catalogue (it
is still in the model's vocabulary): it must never be published, and the list spec must say how long
each user's list has to be.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd

from recsys_tasks.config import PublishConfig
from recsys_tasks.data.publish_safety import checked_rows
from recsys_tasks.data.sequences import ItemVocab
from recsys_tasks.serving.eligibility import catalogue_mask, list_spec
from recsys_tasks.serving.ranking import champion_rows
from recsys_tasks.serving.recommender import Recommender

AS_OF = date(2026, 2, 1)
VOCAB = ItemVocab(["a", "b", "c", "d", "e", "f"])  # indices 1..6
POPULARITY = np.array([0, 50, 40, 30, 20, 100, 10], dtype=np.float32)  # e (index 5) is the most popular
CATALOGUE = pd.DataFrame({
    "item_id": ["a", "b", "c", "d", "f", "z"],  # e is gone; z is new and not in the vocabulary yet
    "title": ["A", "B", "C", "D", "F", "Z"],
    "category": ["x"] * 6,
    "created_at": pd.to_datetime([datetime(2025, 1, 1, tzinfo=UTC)] * 6, utc=True),
})


def _events(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    stamp = datetime(2026, 1, 31, tzinfo=UTC)
    return pd.DataFrame({
        "event_id": [f"e{n}" for n in range(len(rows))],
        "user_id": [r[0] for r in rows],
        "item_id": pd.array([r[1] for r in rows], dtype="string"),
        "event_type": [r[2] for r in rows],
        "event_ts": pd.to_datetime([stamp + timedelta(minutes=n) for n in range(len(rows))], utc=True),
        "value": np.full(len(rows), np.nan),
        "query": pd.array([None] * len(rows), dtype="string"),
        "session_id": pd.array([None] * len(rows), dtype="string"),
    })


EVENTS = _events([
    ("buyer", "a", "view"), ("buyer", "a", "purchase"), ("buyer", "b", "view"), ("buyer", "b", "click"),
    ("fan", "e", "view"), ("fan", "e", "view"), ("fan", "e", "view"), ("fan", "c", "view"),
    ("newbie", "d", "view"),  # one event: a cold-start user, given trending items (e is the most viewed)
])
USERS = ["buyer", "fan", "newbie"]


def _lists(cfg: PublishConfig, k: int) -> dict[str, list[str]]:
    rec = Recommender(kind="popularity", vocab=VOCAB, popularity=POPULARITY)
    rows = list(champion_rows(rec, EVENTS, CATALOGUE, users=USERS, config=cfg, k=k, as_of=AS_OF, run_id="r", model_version="m"))
    spec = list_spec(VOCAB, EVENTS, CATALOGUE, users=USERS, config=cfg, k=k)
    assert list(checked_rows(iter(rows), spec)) == rows  # what the ranking gives always passes the guard
    out: dict[str, list[str]] = {u: [] for u in USERS}
    for row in rows:
        out[row.user_id].append(row.item_id)
    return out


def test_catalogue_mask_marks_catalogue_items_of_the_vocabulary():
    assert catalogue_mask(VOCAB, CATALOGUE).tolist() == [False, True, True, True, True, False, True]


def test_items_outside_the_catalogue_are_never_ranked():
    cfg = PublishConfig(exclude_event_types=("purchase",), demote_after=None, new_item_slots=0, candidate_margin=2)
    lists = _lists(cfg, k=3)
    assert lists == {"buyer": ["b", "c", "d"], "fan": ["a", "b", "c"], "newbie": ["a", "b", "c"]}


def test_list_spec_by_hand():
    cfg = PublishConfig(exclude_event_types=("purchase",), demote_after=2, demote_factor=0.5, candidate_margin=0)
    spec = list_spec(VOCAB, EVENTS, CATALOGUE, users=USERS, config=cfg, k=3)
    # 5 catalogue items in the vocabulary (a b c d f); buyer bought a.
    assert spec.eligible == {"buyer": 4, "fan": 5, "newbie": 5}
    assert spec.need == {"buyer": 3, "fan": 3, "newbie": 3}
    assert spec.catalogue == frozenset({"a", "b", "c", "d", "f", "z"})
    assert list_spec(VOCAB, EVENTS, CATALOGUE, users=USERS, config=cfg, k=5).need == {"buyer": 4, "fan": 5, "newbie": 5}


def test_demotion_that_removes_items_shortens_the_lists_it_may():
    # demote_factor 0 removes buyer's b (looked at twice) from their 3 candidates: 2 items are all they can get.
    # fan's three looks at e do not count: e is not rankable anyway.
    cfg = PublishConfig(exclude_event_types=("purchase",), demote_after=2, demote_factor=0.0, candidate_margin=0, new_item_slots=0)
    spec = list_spec(VOCAB, EVENTS, CATALOGUE, users=USERS, config=cfg, k=3)
    assert spec.need == {"buyer": 2, "fan": 3, "newbie": 3}
    assert _lists(cfg, k=3)["buyer"] == ["c", "d"]
