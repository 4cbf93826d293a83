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
from typing import Any, overload

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


class Ragged(Sequence[np.ndarray]):
    """Per-user arrays stored back to back: user ``u``'s is ``values[offsets[u]:offsets[u + 1]]`` (a view).

    Holds a window's sequences in a few flat arrays instead of one small array per user.
    """

    def __init__(self, values: np.ndarray, offsets: np.ndarray) -> None:
        if len(offsets) < 1 or int(offsets[-1]) != len(values):
            raise ValueError("offsets must start the first run and end at len(values)")
        self.values = values
        self.offsets = np.asarray(offsets, dtype=np.int64)

    @classmethod
    def of(cls, arrays: Sequence[np.ndarray], dtype: Any = np.int64) -> Ragged:
        """The ragged form of ``arrays`` (a copy)."""
        lengths = np.fromiter((len(a) for a in arrays), dtype=np.int64, count=len(arrays))
        values = np.concatenate([np.asarray(a, dtype=dtype) for a in arrays]) if len(arrays) else np.zeros(0, dtype)
        return cls(values.astype(dtype, copy=False), np.concatenate(([0], np.cumsum(lengths))))

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @overload
    def __getitem__(self, index: int) -> np.ndarray: ...
    @overload
    def __getitem__(self, index: slice) -> list[np.ndarray]: ...
    def __getitem__(self, index: int | slice) -> np.ndarray | list[np.ndarray]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        i = index + len(self) if index < 0 else index
        if not 0 <= i < len(self):
            raise IndexError(index)
        return self.values[self.offsets[i] : self.offsets[i + 1]]

    def take(self, positions: np.ndarray) -> Ragged:
        """The runs at ``positions``, in that order (a copy)."""
        positions = np.asarray(positions, dtype=np.int64)
        lengths = self.lengths[positions]
        offsets = np.concatenate(([0], np.cumsum(lengths)))
        gather = np.repeat(self.offsets[positions] - offsets[:-1], lengths) + np.arange(int(offsets[-1]))
        return Ragged(self.values[gather], offsets)

    def where(self, keep: np.ndarray) -> Ragged:
        """Each run with only the values where ``keep`` (aligned with ``values``) is true."""
        kept = np.concatenate(([0], np.cumsum(keep, dtype=np.int64)))
        return Ragged(self.values[keep], kept[self.offsets])


@dataclass
class SequenceData:
    """Per-user, time-ordered interaction sequences in model indices.

    ``items[u]``, ``event_types[u]`` and ``timestamps[u]`` (unix seconds) are aligned integer arrays
    for user ``user_ids[u]``; the oldest interaction first. They are lists of arrays or, for a
    window read from a snapshot, :class:`Ragged` (the same sequence interface, three flat arrays).
    """

    user_ids: list[str]
    items: Sequence[np.ndarray]
    event_types: Sequence[np.ndarray]
    timestamps: Sequence[np.ndarray]

    def __len__(self) -> int:
        return len(self.user_ids)

    def subset(self, positions: Sequence[int]) -> SequenceData:
        """The users at ``positions``, in that order."""
        if isinstance(self.items, Ragged):
            at = np.asarray(positions, dtype=np.int64)
            return SequenceData(
                [self.user_ids[i] for i in at], self.items.take(at), _ragged(self.event_types).take(at),
                _ragged(self.timestamps).take(at),
            )
        return SequenceData(
            user_ids=[self.user_ids[i] for i in positions],
            items=[self.items[i] for i in positions],
            event_types=[self.event_types[i] for i in positions],
            timestamps=[self.timestamps[i] for i in positions],
        )

    @property
    def num_interactions(self) -> int:
        if isinstance(self.items, Ragged):
            return len(self.items.values)
        return int(sum(len(s) for s in self.items))

    def flat(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(offsets (U + 1,), items, event types, timestamps): every sequence back to back."""
        items, kinds, times = (_ragged(a) for a in (self.items, self.event_types, self.timestamps))
        return items.offsets, items.values, kinds.values, times.values


def _ragged(arrays: Sequence[np.ndarray]) -> Ragged:
    return arrays if isinstance(arrays, Ragged) else Ragged.of(arrays)


def item_events(events: pd.DataFrame) -> pd.DataFrame:
    """Events that concern an item (search events without an item are dropped), time-ordered."""
    frame = events[events["item_id"].notna()]
    return frame.sort_values(["user_id", "event_ts", "event_id"], kind="stable")


def user_runs(events: pd.DataFrame, vocab: ItemVocab) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(users, run starts, items, event types, timestamps) of ``events``' item events, sorted by user and time.

    ``users[r]``'s interactions are positions ``starts[r]`` up to the next start of the three arrays;
    items unknown to ``vocab`` are dropped.
    """
    frame = item_events(events)
    idx = vocab.encode(frame["item_id"].to_numpy())
    keep = idx != PAD
    frame = frame.loc[keep]
    idx = idx[keep]
    types = frame["event_type"].map(EVENT_TYPE_IDS).fillna(PAD).to_numpy(dtype=np.int64)
    ts = _unix_seconds(frame["event_ts"])
    user_col = frame["user_id"].astype(str).to_numpy()
    starts = np.flatnonzero(np.concatenate(([True], user_col[1:] != user_col[:-1]))) if len(user_col) else np.zeros(0, np.int64)
    return user_col[starts], starts, idx, types, ts


def build_sequences(events: pd.DataFrame, vocab: ItemVocab, *, users: Sequence[str] | None = None) -> SequenceData:
    """Group ``events`` into per-user sequences; items unknown to ``vocab`` are dropped.

    With ``users`` given, the result has exactly those users in that order (empty arrays for users
    without events).
    """
    run_users, starts, idx, types, ts = user_runs(events, vocab)
    ends = np.concatenate((starts[1:], [len(idx)]))[: len(starts)]
    grouped = {u: (idx[s:e], types[s:e], ts[s:e]) for u, s, e in zip(run_users, starts, ends, strict=True)}
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
