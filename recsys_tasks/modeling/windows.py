"""Training samples: each user's sequence cut into windows, the validation split, and padded batches.

Each user's sequence is cut into windows of ``max_len + 1`` items (the latest window, then earlier
ones with non-overlapping targets); every position of a window predicts the next item. Validation
for early stopping holds out the last item of each training sequence with at least 3 items.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from recsys_tasks.config import ModelConfig
from recsys_tasks.data.sequences import Ragged, SequenceData

#: Validation users are capped (a fixed random subset) so evaluation stays cheap on big data.
MAX_VAL_USERS = 20_000


class TrainError(ValueError):
    """Training cannot start with these inputs; the message says what to change."""


@dataclass
class TrainingData:
    """Training sequences with precomputed gap buckets, their windows, and the validation split."""

    items: Ragged
    types: Ragged
    gaps: Ragged
    windows: np.ndarray  # (N, 3): user, start, end; inputs items[start:end-1], targets items[start+1:end]
    val_users: np.ndarray  # (U,) positions of users whose last item is held out
    val_targets: np.ndarray  # (U,)

    @property
    def flat(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(offsets (U + 1,), items, types, gaps): every sequence back to back, so a batch is one gather."""
        return self.items.offsets, self.items.values, self.types.values, self.gaps.values


def training_windows(lengths: np.ndarray, max_len: int) -> np.ndarray:
    """(N, 3) windows ``(user, start, end)`` of at most ``max_len + 1`` items, latest first per user."""
    lengths = np.asarray(lengths, dtype=np.int64)
    step = max_len  # each earlier window ends one past where the later one starts
    # per user: windows ending at n, n - step, n - 2 step, ... while the end is >= 2
    counts = np.where(lengths >= 2, (lengths - 2) // step + 1, 0)
    users = np.repeat(np.arange(len(lengths), dtype=np.int64), counts)
    firsts = np.concatenate(([0], np.cumsum(counts)[:-1])) if len(counts) else counts
    nth = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(firsts, counts)
    ends = lengths[users] - nth * step
    starts = np.maximum(0, ends - max_len - 1)
    return np.stack([users, starts, ends], axis=1).reshape(-1, 3)


def prepare(
    train: SequenceData, cfg: ModelConfig, seed: int, *, replay_fraction: float = 1.0
) -> TrainingData:
    """Hold out each long-enough user's last item, bucket the gaps, and cut the rest into windows.

    With ``replay_fraction < 1`` only that share of the older windows is kept (``replay_windows``).
    Works on the sequences' flat arrays: memory is a few bytes per interaction, whatever the users.
    """
    offsets, items, kinds, ts = train.flat()
    lengths = np.diff(offsets)
    gaps = _gap_buckets(ts, offsets, cfg.time_gap_buckets)
    val_u = np.flatnonzero(lengths >= 3)
    last = offsets[1:][val_u] - 1
    val_t = items[last].astype(np.int64)
    keep = np.ones(len(items), dtype=bool)
    keep[last] = False
    kept = np.concatenate(([0], np.cumsum(keep, dtype=np.int64)))[offsets]
    ragged = [Ragged(np.ascontiguousarray(a[keep]), kept) for a in (items, kinds, gaps)]
    if len(val_u) > MAX_VAL_USERS:
        pick = np.sort(np.random.default_rng(seed).choice(len(val_u), MAX_VAL_USERS, replace=False))
        val_u, val_t = val_u[pick], val_t[pick]
    windows = training_windows(np.diff(kept), cfg.max_len)
    data = TrainingData(*ragged, windows, val_u.astype(np.int64), val_t)
    if replay_fraction < 1.0:
        data.windows = replay_windows(data, replay_fraction, seed=seed)
    if not len(data.windows):
        raise TrainError("no user has two or more interactions: nothing to learn; widen the history window")
    return data


def _gap_buckets(ts: np.ndarray, offsets: np.ndarray, num_buckets: int) -> np.ndarray:
    """``time_gap_buckets`` of every user's timestamps at once (each sequence's first event: gap 0)."""
    gaps = np.zeros(len(ts), dtype=np.float64)
    if len(ts) > 1:
        gaps[1:] = np.maximum(np.diff(np.asarray(ts, dtype=np.int64)), 0) / 60.0
    firsts = offsets[:-1][np.diff(offsets) > 0]
    gaps[firsts] = 0.0
    buckets = np.floor(np.log2(1.0 + gaps)).astype(np.int64)
    return (1 + np.clip(buckets, 0, num_buckets - 1)).astype(np.int16)


def replay_windows(data: TrainingData, fraction: float, *, seed: int) -> np.ndarray:
    """Every user's latest window plus a random ``fraction`` of the earlier ones (fine-tuning replay)."""
    lengths = data.items.lengths
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
    lengths = np.minimum(data.items.lengths[users], max_len).astype(np.int64)
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
