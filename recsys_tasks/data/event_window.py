"""A run's window of events read from its snapshot in chunks of whole users into a few flat arrays.

Training and evaluation need every user's item sequence before the cutoff and the holdout after
it, not the events' text columns. :func:`read_event_window` streams the snapshot with
:func:`~recsys_tasks.data.user_chunks.user_chunks`, splits each chunk at the cutoff and keeps only
integer arrays: about 13 bytes per item event (item, event type, timestamp) plus the holdout rows,
instead of the ~0.45 GiB per million events of the whole snapshot in pandas. Items are numbered in
a window-local vocabulary; :meth:`EventWindow.encode` maps them into a model's.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
from upath import UPath

from recsys_tasks.data.sequences import PAD, ItemVocab, Ragged, SequenceData, temporal_split, user_runs
from recsys_tasks.data.user_chunks import DEFAULT_CHUNK_ROWS, user_chunks

log = logging.getLogger(__name__)

#: The snapshot columns sequences and the holdout are built from.
COLUMNS = ("event_id", "user_id", "item_id", "event_type", "event_ts")


@dataclass(frozen=True)
class EventWindow:
    """Every user's item events before the cutoff (``sequences``, in ``local`` item numbers, users
    sorted) and the holdout after it (``user_id``, ``item_id``, ``rank``)."""

    cutoff: datetime
    local: ItemVocab
    sequences: SequenceData
    holdout: pd.DataFrame

    @property
    def train_item_ids(self) -> list[str]:
        """Ids of the items with an event before the cutoff, in no particular order."""
        return self.local.item_ids

    def encode(self, vocab: ItemVocab, users: Sequence[str] | None = None) -> SequenceData:
        """The sequences in ``vocab``'s indices (items it does not know dropped), of ``users`` in that
        order when given (empty for users without events), else of every user."""
        seqs = self.sequences if users is None else self._of_users(list(users))
        _, items, kinds, times = seqs.flat()
        mapped = self._remap(vocab)[items]
        keep = mapped != PAD
        offsets = seqs.items.offsets
        return SequenceData(
            list(seqs.user_ids), Ragged(mapped, offsets).where(keep), Ragged(kinds, offsets).where(keep),
            Ragged(times, offsets).where(keep),
        )

    def popularity(self, vocab: ItemVocab, *, recent_seconds: float | None = None) -> np.ndarray:
        """``popularity_counts`` of ``encode(vocab)``, counted in the window's own numbers (no copy of it)."""
        remap = self._remap(vocab)
        _, items, _, ts = self.sequences.flat()
        known = remap[items] != PAD
        if recent_seconds is not None and known.any():
            known &= ts >= int(ts[known].max()) - recent_seconds
        local = np.bincount(items[known], minlength=len(self.local)).astype(np.float64)
        counts = np.bincount(remap, weights=local, minlength=len(vocab))[: len(vocab)]
        counts[PAD] = 0.0
        return counts

    def only(self, users: Sequence[str]) -> EventWindow:
        """This window with the sequences of ``users`` only (those of them it has), e.g. the holdout's."""
        at, found = self._positions(users)
        return EventWindow(self.cutoff, self.local, self.sequences.subset(np.unique(at[found])), self.holdout)

    def history_lengths(self, users: Sequence[str]) -> np.ndarray:
        """Item events before the cutoff of each of ``users`` (0 for users without any)."""
        at, found = self._positions(users)
        lengths = np.zeros(len(users), dtype=np.int64)
        lengths[found] = self.sequences.items.lengths[at[found]]
        return lengths

    def _remap(self, vocab: ItemVocab) -> np.ndarray:
        """Window item number -> ``vocab`` index (``PAD`` for items ``vocab`` does not know)."""
        return np.concatenate(([PAD], vocab.encode(self.local.item_ids))).astype(np.int64)

    def _positions(self, users: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(position of each of ``users`` among the window's sorted users, whether it is there at all)."""
        ids = self.sequences.user_ids
        if not ids:
            return np.zeros(len(users), dtype=np.int64), np.zeros(len(users), dtype=bool)
        at = np.minimum(np.searchsorted(ids, users), len(ids) - 1).astype(np.int64)
        found = np.fromiter((ids[i] == u for i, u in zip(at, users, strict=True)), dtype=bool, count=len(users))
        return at, found

    def _of_users(self, users: list[str]) -> SequenceData:
        """The runs of ``users`` in that order, empty runs for users the window does not have."""
        at, found = self._positions(users)
        present = self.sequences.subset(at[found])
        lengths = np.zeros(len(users), dtype=np.int64)
        lengths[found] = present.items.lengths
        offsets = np.concatenate(([0], np.cumsum(lengths)))
        _, items, kinds, times = present.flat()
        return SequenceData(users, Ragged(items, offsets), Ragged(kinds, offsets), Ragged(times, offsets))


def read_event_window(
    events_path: Path | UPath, *, cutoff: datetime, items_per_user: int = 1, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> EventWindow:
    """Read the snapshot events file at ``events_path`` into an :class:`EventWindow` split at ``cutoff``.

    Memory: one chunk of ``chunk_rows`` rows (whole users) as a frame, plus the window's flat arrays.
    The result equals ``temporal_split`` + ``build_sequences`` of the whole file.
    """
    local = ItemVocab()
    users: list[np.ndarray] = []
    lengths: list[np.ndarray] = []
    items: list[np.ndarray] = []
    kinds: list[np.ndarray] = []
    times: list[np.ndarray] = []
    holdouts: list[pd.DataFrame] = []
    rows = 0
    for chunk in user_chunks(events_path, columns=COLUMNS, chunk_rows=chunk_rows):
        split = temporal_split(chunk, cutoff, items_per_user=items_per_user)
        holdouts.append(split.holdout)
        train = split.train_events
        local.extend(pd.unique(train["item_id"].dropna().astype(str)))
        run_users, starts, idx, types, ts = user_runs(train, local)
        users.append(run_users)
        lengths.append(np.diff(np.concatenate((starts, [len(idx)]))).astype(np.int64))
        items.append(idx.astype(np.int32))
        kinds.append(types.astype(np.int8))
        times.append(ts)
        rows += len(chunk)
    sequences = _sorted_sequences(users, lengths, items, kinds, times)
    holdout = pd.concat(holdouts, ignore_index=True) if holdouts else pd.DataFrame(columns=["user_id", "item_id", "rank"])
    log.info(
        "read %d events: %d users with %d item events before %s, %d holdout rows, %d items",
        rows, len(sequences), sequences.num_interactions, cutoff, len(holdout), len(local) - 1,
    )
    return EventWindow(cutoff=cutoff, local=local, sequences=sequences, holdout=holdout)


def _sorted_sequences(
    users: list[np.ndarray], lengths: list[np.ndarray], items: list[np.ndarray], kinds: list[np.ndarray], times: list[np.ndarray]
) -> SequenceData:
    """One ragged SequenceData of the chunks' runs, users in sorted order (as ``build_sequences`` has them)."""
    user_ids = _cat(users, object)
    offsets = np.concatenate(([0], np.cumsum(_cat(lengths, np.int64))))
    flat = [Ragged(_cat(items, np.int32), offsets), Ragged(_cat(kinds, np.int8), offsets), Ragged(_cat(times, np.int64), offsets)]
    order = np.argsort(user_ids.astype(str), kind="stable") if len(user_ids) else np.zeros(0, dtype=np.int64)
    if len(order) and not (order == np.arange(len(order))).all():
        flat = [r.take(order) for r in flat]
        user_ids = user_ids[order]
    return SequenceData([str(u) for u in user_ids], *flat)


def _cat(parts: list[np.ndarray], dtype: object) -> np.ndarray:
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype)


__all__ = ["COLUMNS", "EventWindow", "read_event_window"]
