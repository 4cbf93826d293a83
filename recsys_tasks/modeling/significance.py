"""How sure we are that one model beats another on the same holdout users: a paired bootstrap.

Both models are scored on the same users, so the comparison is paired: resampling users (with
replacement) keeps each user's two values together, and the spread of the resampled relative
improvement ``(mean_a - mean_b) / mean_b`` is the uncertainty the promotion rule has to clear.
The interval is the percentile interval (Efron & Tibshirani, *An Introduction to the Bootstrap*,
ch. 13) taken with the inverted-CDF rule, so each bound is one of the resampled values and can be
recomputed exactly from the stored per-user values, the seed and the number of resamples.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

#: Upper bound on the resample-index matrix built at once (int32 cells, so 16 MiB): large holdouts
#: are resampled in blocks. Fixed, so the same inputs always give the same interval.
_BLOCK_CELLS = 1 << 22


@dataclass(frozen=True)
class Interval:
    """The relative improvement of ``a`` over ``b`` on ``n`` paired users, with its confidence interval."""

    relative: float
    low: float
    high: float
    confidence: float
    n: int
    mean_a: float
    mean_b: float
    resamples: int
    seed: int

    def text(self) -> str:
        """``+3.1% [+0.4%, +5.9%], 95%, n = 1,204``."""
        return f"{signed_percent(self.relative)} [{signed_percent(self.low)}, {signed_percent(self.high)}], {self.confidence * 100:g}%, n = {self.n:,}"

    def clears(self, margin: float) -> bool:
        """Whether the whole interval lies above ``margin`` (a relative improvement, 0.01 = 1%)."""
        return self.low > margin

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resample_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    """The ``(resamples, n)`` user indices :func:`paired_bootstrap` draws for these arguments."""
    return np.concatenate(list(_index_blocks(n, resamples, seed)))


def _index_blocks(n: int, resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Resample indices in blocks of at most ``_BLOCK_CELLS`` cells, one seeded stream."""
    rng = np.random.default_rng(seed)
    block = max(1, _BLOCK_CELLS // n)
    for done in range(0, resamples, block):
        yield rng.integers(0, n, size=(min(block, resamples - done), n), dtype=np.int32)  # (R_block, n)


def paired_bootstrap(
    a: np.ndarray, b: np.ndarray, *, confidence: float = 0.95, resamples: int = 2000, seed: int = 0
) -> Interval:
    """Percentile interval of ``(mean(a) - mean(b)) / mean(b)`` over ``resamples`` resamples of the users.

    ``a[i]`` and ``b[i]`` are the same user's metric under the two models. A resample whose ``b``
    mean is 0 counts as +inf (or 0 when ``a``'s is 0 too): any gain over nothing is unbounded.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"paired values must be two non-empty 1-d arrays of the same length, got {a.shape} and {b.shape}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if resamples < 1:
        raise ValueError(f"resamples must be positive, got {resamples}")
    n = a.size
    ratios = np.sort(np.concatenate([_relative(a[idx].mean(axis=1), b[idx].mean(axis=1)) for idx in _index_blocks(n, resamples, seed)]))
    tail = (1.0 - confidence) / 2.0
    low, high = (_inverted_cdf(ratios, q) for q in (tail, 1.0 - tail))
    mean_a, mean_b = float(a.mean()), float(b.mean())
    relative = float(_relative(np.array([mean_a]), np.array([mean_b]))[0])
    return Interval(relative, low, high, confidence, n, mean_a, mean_b, resamples, seed)


def _relative(mean_a: np.ndarray, mean_b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (mean_a - mean_b) / mean_b
    return np.where(mean_b > 0, out, np.where(mean_a > mean_b, np.inf, 0.0))


def _inverted_cdf(sorted_values: np.ndarray, q: float) -> float:
    """The smallest value whose empirical CDF reaches ``q`` (no interpolation, so inf stays inf)."""
    position = max(0, math.ceil(q * sorted_values.size - 1e-9) - 1)
    return float(sorted_values[position])


def signed_percent(value: float) -> str:
    """``+3.1%``, ``-0.4%``, ``+inf%``: a relative change as people read it."""
    return f"{value:+.1%}" if math.isfinite(value) else ("+inf%" if value > 0 else "-inf%")
