"""Which items a user may be recommended, and so how short their published list may legitimately be.

The ranking (``serving.ranking.champion_rows``) ranks the run's catalogue items that are in the
champion's vocabulary (:func:`catalogue_mask`), never an item the user had an
``exclude_event_types`` event with, and fills ``top_k`` slots whenever that many items are left:
demotion only re-orders, the category cap and the cold-start lists backfill, new-item slots replace
or grow. The one rule that removes items is demotion with ``demote_factor: 0``: an item looked at
``demote_after`` times or more leaves the user's candidates (``top_k + candidate_margin`` of them).
:func:`list_spec` turns that into the shortest list each user can get; a shorter one means the
model's scores are broken, and the publish refuses it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from recsys_tasks.data.publish_safety import ListSpec
from recsys_tasks.data.sequences import EVENT_TYPE_IDS, ItemVocab
from recsys_tasks.serving.rules import LOOK_EVENT_TYPES


def catalogue_mask(vocab: ItemVocab, items: pd.DataFrame) -> np.ndarray:
    """(V,) bool: the vocabulary's items that are in the catalogue ``items`` (padding never is)."""
    mask = np.zeros(len(vocab), dtype=bool)
    mask[vocab.encode(items["item_id"].astype(str).to_numpy())] = True
    mask[0] = False
    return mask


def list_spec(vocab: ItemVocab, events: pd.DataFrame, items: pd.DataFrame, *, users: Sequence[str], config: Any, k: int) -> ListSpec:
    """What each of ``users``' lists must satisfy when ranked from ``events`` with ``config``'s rules
    (a ``PublishConfig``) at ``k`` per user: catalogue items only, at least ``min(k, eligible)`` of them."""
    allowed = catalogue_mask(vocab, items)
    ids = pd.Index([str(u) for u in users])
    frame = events.loc[events["item_id"].notna(), ["user_id", "item_id", "event_type"]]
    frame = frame.assign(user_id=frame["user_id"].astype(str), idx=vocab.encode(frame["item_id"].astype(str).to_numpy()))
    frame = frame[frame["user_id"].isin(ids) & allowed[frame["idx"].to_numpy()]]

    excluded_events = frame[frame["event_type"].isin(list(config.exclude_event_types))]
    excluded = excluded_events.groupby("user_id")["idx"].nunique().reindex(ids, fill_value=0)
    eligible = int(allowed.sum()) - excluded  # (users,)
    need = np.minimum(k, eligible)
    if config.demote_after is not None and config.demote_factor == 0:
        # Items looked at often enough are removed from the top k + margin candidates, not replaced.
        pairs = set(zip(excluded_events["user_id"], excluded_events["idx"], strict=True))
        looks = frame[frame["event_type"].map(EVENT_TYPE_IDS).isin(LOOK_EVENT_TYPES)]
        counts = looks.groupby(["user_id", "idx"]).size()
        removed_pairs = [pair for pair, n in counts.items() if n >= config.demote_after and pair not in pairs]
        removed = pd.Series([user for user, _ in removed_pairs], dtype=object).value_counts().reindex(ids, fill_value=0)
        need = np.maximum(0, np.minimum(k, np.minimum(k + config.candidate_margin, eligible) - removed))
    return ListSpec(
        top_k=k,
        catalogue=frozenset(items["item_id"].astype(str)),
        need=dict(zip(ids, need.astype(int).tolist(), strict=True)),
        eligible=dict(zip(ids, eligible.astype(int).tolist(), strict=True)),
    )
