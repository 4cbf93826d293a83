"""From an events frame to what models consume: a stable item vocabulary and per-user sequences.

The canonical events frame (what ``warehouse.extract_interval`` writes and every later stage reads)
has the columns of :data:`EVENT_COLUMNS`: ``event_id``, ``user_id``, ``item_id`` (strings; ``item_id``
may be null for search events), ``event_type`` (one of ``config.EVENT_TYPES``), ``event_ts``
(timezone-aware UTC timestamps), ``value`` (float, nullable), ``query`` and ``session_id`` (strings,
nullable). The catalogue frame has :data:`ITEM_COLUMNS`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from recsys_tasks.config import EVENT_TYPES

EVENT_COLUMNS: tuple[str, ...] = (
    "event_id",
    "user_id",
    "item_id",
    "event_type",
    "event_ts",
    "value",
    "query",
    "session_id",
)
ITEM_COLUMNS: tuple[str, ...] = ("item_id", "title", "category", "created_at")

#: Event-type embedding ids: 0 is padding, then EVENT_TYPES in order.
EVENT_TYPE_IDS: dict[str, int] = {name: i + 1 for i, name in enumerate(EVENT_TYPES)}

PAD = 0


class ItemVocab:
    """A stable mapping between warehouse item ids (strings) and model indices; index 0 is padding.

    The vocabulary only grows: ``extend`` appends unseen ids, so an index learnt last night still
    means the same item tonight.
    """

    def __init__(self, item_ids: Iterable[str] = ()) -> None:
        self._ids: list[str] = []
        self._index: dict[str, int] = {}
        self.extend(item_ids)

    def __len__(self) -> int:
        """Number of rows in an embedding table for this vocabulary (items + padding)."""
        return len(self._ids) + 1

    @property
    def item_ids(self) -> list[str]:
        """Item ids in index order (index ``i + 1`` is ``item_ids[i]``)."""
        return list(self._ids)

    def extend(self, item_ids: Iterable[str]) -> list[str]:
        """Append ids not yet known; return the newly added ones in order."""
        added = []
        for raw in item_ids:
            item = str(raw)
            if item not in self._index:
                self._ids.append(item)
                self._index[item] = len(self._ids)
                added.append(item)
        return added

    def encode(self, item_ids: Sequence[str] | pd.Series) -> np.ndarray:
        """Indices for ``item_ids``; unknown ids map to 0 (padding)."""
        get = self._index.get
        return np.fromiter((get(str(i), PAD) for i in item_ids), dtype=np.int64, count=len(item_ids))

    def decode(self, indices: Iterable[int]) -> list[str]:
        """Item ids for model indices (index 0 is not an item)."""
        return [self._ids[int(i) - 1] for i in indices]

    def __contains__(self, item_id: object) -> bool:
        return str(item_id) in self._index

    def to_json(self) -> str:
        return json.dumps(self._ids)

    @classmethod
    def from_json(cls, text: str) -> ItemVocab:
        return cls(json.loads(text))


@dataclass
class SequenceData:
    """Per-user, time-ordered interaction sequences in model indices.

    ``items[u]``, ``event_types[u]`` and ``timestamps[u]`` (unix seconds) are aligned int64 arrays
    for user ``user_ids[u]``; the oldest interaction first.
    """

    user_ids: list[str]
    items: list[np.ndarray]
    event_types: list[np.ndarray]
    timestamps: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.user_ids)

    def subset(self, positions: Sequence[int]) -> SequenceData:
        """The users at ``positions``, in that order."""
        return SequenceData(
            user_ids=[self.user_ids[i] for i in positions],
            items=[self.items[i] for i in positions],
            event_types=[self.event_types[i] for i in positions],
            timestamps=[self.timestamps[i] for i in positions],
        )

    @property
    def num_interactions(self) -> int:
        return int(sum(len(s) for s in self.items))


def item_events(events: pd.DataFrame) -> pd.DataFrame:
    """Events that concern an item (search events without an item are dropped), time-ordered."""
    frame = events[events["item_id"].notna()]
    return frame.sort_values(["user_id", "event_ts", "event_id"], kind="stable")


def build_sequences(events: pd.DataFrame, vocab: ItemVocab, *, users: Sequence[str] | None = None) -> SequenceData:
    """Group ``events`` into per-user sequences; items unknown to ``vocab`` are dropped.

    With ``users`` given, the result has exactly those users in that order (empty arrays for users
    without events).
    """
    frame = item_events(events)
    idx = vocab.encode(frame["item_id"].to_numpy())
    keep = idx != PAD
    frame = frame.loc[keep]
    idx = idx[keep]
    types = frame["event_type"].map(EVENT_TYPE_IDS).fillna(PAD).to_numpy(dtype=np.int64)
    ts = _unix_seconds(frame["event_ts"])
    user_col = frame["user_id"].astype(str).to_numpy()
    grouped: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    if len(user_col):
        # frame is sorted by user: split into contiguous runs
        boundaries = np.flatnonzero(user_col[1:] != user_col[:-1]) + 1
        starts = np.concatenate(([0], boundaries))
        ends = np.concatenate((boundaries, [len(user_col)]))
        for s, e in zip(starts, ends, strict=True):
            grouped[user_col[s]] = (idx[s:e], types[s:e], ts[s:e])
    order = list(users) if users is not None else sorted(grouped)
    empty = np.zeros(0, dtype=np.int64)
    out = SequenceData([], [], [], [])
    for user in order:
        items, kinds, times = grouped.get(user, (empty, empty, empty))
        out.user_ids.append(user)
        out.items.append(items)
        out.event_types.append(kinds)
        out.timestamps.append(times)
    return out


@dataclass
class TemporalSplit:
    """Events before the cutoff (training) and each holdout user's next items after it."""

    cutoff: datetime
    train_events: pd.DataFrame
    #: columns user_id, item_id, rank (0 = the first interaction after the cutoff)
    holdout: pd.DataFrame


def temporal_split(events: pd.DataFrame, cutoff: datetime, *, items_per_user: int = 1) -> TemporalSplit:
    """Split at ``cutoff``: nothing at or after it is training data.

    The holdout is, per user with item events at or after the cutoff, their first
    ``items_per_user`` distinct items from then on. It is the same for every model scored in a run.
    """
    cutoff_ts = pd.Timestamp(cutoff)
    if cutoff_ts.tzinfo is None:
        cutoff_ts = cutoff_ts.tz_localize("UTC")
    before = events["event_ts"] < cutoff_ts
    after = item_events(events.loc[~before])
    after = after.drop_duplicates(["user_id", "item_id"], keep="first")
    after = after.assign(rank=after.groupby("user_id").cumcount())
    holdout = after.loc[after["rank"] < items_per_user, ["user_id", "item_id", "rank"]].reset_index(drop=True)
    return TemporalSplit(cutoff=cutoff_ts.to_pydatetime(), train_events=events.loc[before], holdout=holdout)


def _unix_seconds(ts: pd.Series) -> np.ndarray:
    values = pd.to_datetime(ts, utc=True)
    return (values.astype("int64") // _NS_PER_UNIT[values.dt.unit]).to_numpy(dtype=np.int64)


_NS_PER_UNIT = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
