"""Training samples: each user's sequence cut into windows, the validation split, and padded batches.

Each user's sequence is cut into windows of ``max_len + 1`` items (the latest window, then earlier
ones with non-overlapping targets); every position of a window predicts the next item. Validation
for early stopping holds out the last item of each training sequence with at least 3 items.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from recsys_tasks.config import ModelConfig
from recsys_tasks.data.sequences import SequenceData
from recsys_tasks.modeling.model import time_gap_buckets

#: Validation users are capped (a fixed random subset) so evaluation stays cheap on big data.
MAX_VAL_USERS = 20_000


class TrainError(ValueError):
    """Training cannot start with these inputs; the message says what to change."""


@dataclass
class TrainingData:
    """Training sequences with precomputed gap buckets, their windows, and the validation split."""

    items: list[np.ndarray]
    types: list[np.ndarray]
    gaps: list[np.ndarray]
    windows: np.ndarray  # (N, 3): user, start, end; inputs items[start:end-1], targets items[start+1:end]
    val_users: np.ndarray  # (U,) positions of users whose last item is held out
    val_targets: np.ndarray  # (U,)

    @cached_property
    def flat(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(offsets (U,), items, types, gaps): every sequence back to back, so a batch is one gather."""
        lengths = np.fromiter((len(s) for s in self.items), dtype=np.int64, count=len(self.items))
        offsets = np.concatenate(([0], np.cumsum(lengths)[:-1])) if len(lengths) else lengths
        join = lambda parts: np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)  # noqa: E731
        return offsets, join(self.items), join(self.types), join(self.gaps)


def training_windows(lengths: np.ndarray, max_len: int) -> np.ndarray:
    """(N, 3) windows ``(user, start, end)`` of at most ``max_len + 1`` items, latest first per user."""
    rows = []
    for u, n in enumerate(lengths):
        end = int(n)
        while end >= 2:
            start = max(0, end - max_len - 1)
            rows.append((u, start, end))
            end = start + 1  # the earlier window's targets stop where this window's begin
    return np.asarray(rows, dtype=np.int64).reshape(-1, 3)


def prepare(
    train: SequenceData, cfg: ModelConfig, seed: int, *, replay_fraction: float = 1.0
) -> TrainingData:
    """Hold out each long-enough user's last item, bucket the gaps, and cut the rest into windows.

    With ``replay_fraction < 1`` only that share of the older windows is kept (``replay_windows``).
    """
    items, types, gaps, val_users, val_targets = [], [], [], [], []
    for u, (seq, kinds, ts) in enumerate(zip(train.items, train.event_types, train.timestamps, strict=True)):
        g = time_gap_buckets(ts, cfg.time_gap_buckets)
        if len(seq) >= 3:
            val_users.append(u)
            val_targets.append(int(seq[-1]))
            seq, kinds, g = seq[:-1], kinds[:-1], g[:-1]
        items.append(np.asarray(seq, dtype=np.int64))
        types.append(np.asarray(kinds, dtype=np.int64))
        gaps.append(g)
    val_u = np.asarray(val_users, dtype=np.int64)
    val_t = np.asarray(val_targets, dtype=np.int64)
    if len(val_u) > MAX_VAL_USERS:
        keep = np.sort(np.random.default_rng(seed).choice(len(val_u), MAX_VAL_USERS, replace=False))
        val_u, val_t = val_u[keep], val_t[keep]
    windows = training_windows(np.array([len(s) for s in items]), cfg.max_len)
    data = TrainingData(items, types, gaps, windows, val_u, val_t)
    if replay_fraction < 1.0:
        data.windows = replay_windows(data, replay_fraction, seed=seed)
    if not len(data.windows):
        raise TrainError("no user has two or more interactions: nothing to learn; widen the history window")
    return data


def replay_windows(data: TrainingData, fraction: float, *, seed: int) -> np.ndarray:
    """Every user's latest window plus a random ``fraction`` of the earlier ones (fine-tuning replay)."""
    lengths = np.array([len(s) for s in data.items])
    latest = data.windows[:, 2] == lengths[data.windows[:, 0]]
    keep = latest | (np.random.default_rng(seed).random(len(data.windows)) < fraction)
    return data.windows[keep]


def positions_per_batch(data: TrainingData, batch_size: int) -> float:
    """Mean number of target positions in a batch of ``batch_size`` windows (what a loss step scores)."""
    per_window = float((data.windows[:, 2] - data.windows[:, 1] - 1).mean()) if len(data.windows) else 0.0
    return per_window * min(batch_size, len(data.windows))


def collate(data: TrainingData, rows: np.ndarray) -> tuple[torch.Tensor, ...]:
    """Right-padded (items, types, gaps, targets), each (B, T), of the windows ``rows`` (B, 3)."""
    offsets, items, types, gaps = data.flat
    n = rows[:, 2] - rows[:, 1] - 1  # (B,) input positions of each window
    columns = np.arange(int(n.max()))
    valid = columns[None, :] < n[:, None]  # (B, T)
    at = np.where(valid, (offsets[rows[:, 0]] + rows[:, 1])[:, None] + columns[None, :], 0)  # (B, T)
    x, ty, ga = (np.where(valid, a[at], 0) for a in (items, types, gaps))
    y = np.where(valid, items[np.where(valid, at + 1, 0)], 0)  # each position's next item
    return tuple(torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64)) for a in (x, ty, ga, y))


def history_batch(data: TrainingData, users: np.ndarray, max_len: int) -> tuple[torch.Tensor, ...]:
    """Right-padded last ``max_len`` items (and types, gaps) of each user's training sequence, and lengths."""
    lengths = np.array([min(len(data.items[u]), max_len) for u in users], dtype=np.int64)
    shape = (len(users), max(1, int(lengths.max(initial=0))))
    x, ty, ga = (np.zeros(shape, dtype=np.int64) for _ in range(3))
    for b, (u, n) in enumerate(zip(users, lengths, strict=True)):
        if n:
            x[b, :n] = data.items[u][-n:]
            ty[b, :n] = data.types[u][-n:]
            ga[b, :n] = data.gaps[u][-n:]
    return tuple(torch.from_numpy(a) for a in (x, ty, ga, lengths))


__all__ = [
    "MAX_VAL_USERS",
    "TrainError",
    "TrainingData",
    "collate",
    "history_batch",
    "positions_per_batch",
    "prepare",
    "replay_windows",
    "training_windows",
]
