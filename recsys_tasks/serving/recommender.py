"""A model directory as a recommender: score histories and stream top-K in chunks."""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn

from recsys_tasks.data.sequences import ItemVocab, SequenceData
from recsys_tasks.modeling.artifacts import (
    WEIGHTS_FILE,
    ModelDirError,
    load_network,
    read_sidecar,
    resolve_device,
    save_model,
)
from recsys_tasks.modeling.baselines import popularity_counts
from recsys_tasks.modeling.model import make_batch

log = logging.getLogger(__name__)



#: Catalogue items scored at once per user chunk: bounds publish's score matrix to
#: (batch_users, ITEM_CHUNK) however large the catalogue (4096 x 16384 floats = 256 MiB).
ITEM_CHUNK = 16_384


def _excluded_cells(exclude: Sequence[Collection[int]] | None, num_items: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, cols) of the excluded (user, item index) cells of one chunk of users."""
    rows: list[int] = []
    cols: list[int] = []
    for b, excluded in enumerate(exclude or ()):
        idx = [int(i) for i in excluded if 0 < int(i) < num_items]
        rows.extend([b] * len(idx))
        cols.extend(idx)
    return torch.tensor(rows, dtype=torch.int64), torch.tensor(cols, dtype=torch.int64)


class Recommender:
    """Top-K recommendations and item vectors from one model directory."""

    def __init__(
        self,
        *,
        kind: str,
        vocab: ItemVocab,
        popularity: np.ndarray,
        model_dir: Path | None = None,
        model: nn.Module | None = None,
        sidecar: Mapping[str, Any] | None = None,
        device: torch.device | None = None,
    ) -> None:
        self.kind = kind
        self.vocab = vocab
        self.model_dir = model_dir
        self.model = model
        self.sidecar = dict(sidecar or {})
        self.device = device or torch.device("cpu")
        self.popularity_counts = np.asarray(popularity, dtype=np.float32).copy()
        pop = self.popularity_counts.copy()
        pop[0] = -np.inf
        # An index tie-break below half a count keeps equal counts in a deterministic order.
        tie_break = np.arange(len(pop), dtype=np.float32) / (2.0 * len(pop))
        self._popularity = torch.from_numpy(pop - tie_break).to(self.device)

    @torch.no_grad()
    def scores(self, histories: SequenceData) -> torch.Tensor:
        """Scores (B, V) for each history's next item; padding is -inf; empty histories get popularity."""
        B = len(histories)
        if self.model is None:
            return self._popularity.unsqueeze(0).expand(B, -1).clone()
        cfg = self.model.cfg
        items, types, gaps, lengths = make_batch(
            histories.items,
            histories.event_types,
            histories.timestamps,
            max_len=cfg.max_len,
            num_gap_buckets=cfg.time_gap_buckets,
        )
        items, types, gaps = items.to(self.device), types.to(self.device), gaps.to(self.device)
        lengths = lengths.to(self.device)
        out = self.model.next_item_scores(items, types, gaps, lengths)  # (B, V)
        empty = lengths == 0
        if empty.any():
            out[empty] = self._popularity
        return out

    def recommend(
        self,
        histories: SequenceData,
        *,
        k: int,
        exclude: Sequence[Collection[int]] | None = None,
        batch_users: int = 4096,
        item_chunk: int = ITEM_CHUNK,
        allowed: np.ndarray | None = None,
    ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """Yield ``(offset, top-k indices (B, k) int64, scores (B, k) float32)`` per chunk of users.

        Padding (index 0), ``exclude[u]`` and the items ``allowed`` ((V,) bool, e.g. the run's
        catalogue) marks False are never returned. A user with fewer than ``k``
        eligible items gets the eligible ones followed by index 0 with score ``-inf``. Scores are
        computed ``item_chunk`` catalogue items at a time and merged into a running top-k, so memory
        is (batch_users, item_chunk) whatever the catalogue size.
        """
        num_real = len(self.vocab) - 1
        if not 1 <= k <= num_real:
            raise ValueError(f"k={k} must be between 1 and the catalogue size {num_real}")
        if exclude is not None and len(exclude) != len(histories):
            raise ValueError(f"exclude has {len(exclude)} rows but histories has {len(histories)} users")
        blocked = None if allowed is None else torch.from_numpy(~np.asarray(allowed, dtype=bool)).to(self.device)
        for start in range(0, len(histories), batch_users):
            stop = min(start + batch_users, len(histories))
            chunk = histories.subset(range(start, stop))
            excluded = _excluded_cells(exclude[start:stop] if exclude is not None else None, len(self.vocab))
            top_scores, top_idx = self._running_topk(chunk, k=k, excluded=excluded, item_chunk=item_chunk, blocked=blocked)
            top_idx = top_idx.masked_fill(torch.isinf(top_scores) & (top_scores < 0), 0)
            yield start, top_idx.cpu().numpy().astype(np.int64), top_scores.float().cpu().numpy()

    def _running_topk(
        self, histories: SequenceData, *, k: int, excluded: tuple[torch.Tensor, torch.Tensor], item_chunk: int,
        blocked: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Best ``k`` (scores, indices) per history over the catalogue, one slice of items at a time."""
        B, V = len(histories), len(self.vocab)
        hidden = self._hidden(histories)
        ex_rows, ex_cols = (t.to(self.device) for t in excluded)
        best_s = torch.full((B, k), float("-inf"), device=self.device)
        best_i = torch.zeros((B, k), dtype=torch.int64, device=self.device)
        for lo in range(0, V, item_chunk):
            hi = min(lo + item_chunk, V)
            scores = self._slice_scores(hidden, lo, hi, B)  # (B, n)
            here = (ex_cols >= lo) & (ex_cols < hi)
            scores[ex_rows[here], ex_cols[here] - lo] = float("-inf")
            if blocked is not None:
                scores[:, blocked[lo:hi]] = float("-inf")
            # The slice's own top-k first, so the merge touches (B, 2k) values, not (B, k + n).
            slice_s, slice_i = torch.topk(scores, min(k, hi - lo), dim=1)
            cand_s = torch.cat([best_s, slice_s], dim=1)
            cand_i = torch.cat([best_i, slice_i + lo], dim=1)
            best_s, pos = torch.topk(cand_s, k, dim=1)
            best_i = torch.gather(cand_i, 1, pos)
        return best_s, best_i

    def _hidden(self, histories: SequenceData) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """(last hidden state (B, C), padded items (B, T), empty-history mask (B,)), or None for popularity."""
        if self.model is None:
            return None
        cfg = self.model.cfg
        items, types, gaps, lengths = make_batch(
            histories.items, histories.event_types, histories.timestamps,
            max_len=cfg.max_len, num_gap_buckets=cfg.time_gap_buckets,
        )
        items, lengths = items.to(self.device), lengths.to(self.device)
        with torch.no_grad():
            h_last = self.model.last_hidden(items, types.to(self.device), gaps.to(self.device), lengths)
        return h_last, items, lengths == 0

    @torch.no_grad()
    def _slice_scores(
        self, hidden: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None, lo: int, hi: int, users: int
    ) -> torch.Tensor:
        if hidden is None:
            return self._popularity[lo:hi].unsqueeze(0).expand(users, -1).clone()
        h_last, items, empty = hidden
        scores = self.model.score_items(h_last, items, lo, hi)  # (B, n)
        if empty.any():
            scores[empty] = self._popularity[lo:hi]
        return scores

    def item_vectors(self) -> np.ndarray:
        """Item vectors (len(vocab), d) for item-to-item similarity; popularity models have d = 1."""
        if self.model is None:
            return self.popularity_counts[:, None].copy()
        return self.model.item_vectors().detach().float().cpu().numpy()


def load_recommender(model_dir: Path, *, device: str = "auto") -> Recommender:
    """Load any model directory (transformer, gru or popularity) as a ``Recommender``."""
    model_dir = Path(model_dir)
    sidecar = read_sidecar(model_dir)
    dev = resolve_device(device)
    if sidecar["kind"] == "popularity":
        weights = model_dir / WEIGHTS_FILE
        if not weights.is_file():
            raise ModelDirError(f"{weights} does not exist; re-run save_popularity")
        popularity = load_file(str(weights))["popularity"].numpy()
        return Recommender(
            kind="popularity",
            vocab=ItemVocab(sidecar["item_ids"]),
            popularity=popularity,
            model_dir=model_dir,
            sidecar=sidecar,
            device=dev,
        )
    model, sidecar, vocab = load_network(model_dir, device=str(dev))
    return Recommender(
        kind=sidecar["kind"],
        vocab=vocab,
        popularity=model.popularity.cpu().numpy(),
        model_dir=model_dir,
        model=model,
        sidecar=sidecar,
        device=dev,
    )


class PopularityRecommender(Recommender):
    """Most popular items of the (recent) training data, the same for every user."""

    @classmethod
    def fit(
        cls, train: SequenceData, vocab: ItemVocab, *, recent_seconds: float | None = None
    ) -> PopularityRecommender:
        """Count interactions in ``train`` (only the last ``recent_seconds`` when given)."""
        counts = popularity_counts(train, len(vocab), recent_seconds=recent_seconds)
        return cls(kind="popularity", vocab=vocab, popularity=counts)

    def save(self, model_dir: Path, *, extra: Mapping[str, Any] | None = None) -> Path:
        """Write this model as a ``popularity`` model directory."""
        self.model_dir = save_model(
            model_dir, kind="popularity", vocab=self.vocab, popularity=self.popularity_counts, extra=extra
        )
        return self.model_dir


def save_popularity(
    model_dir: Path,
    *,
    train: SequenceData,
    vocab: ItemVocab,
    recent_seconds: float | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Fit the popularity baseline on ``train`` and write it to ``model_dir`` (kind "popularity")."""
    return PopularityRecommender.fit(train, vocab, recent_seconds=recent_seconds).save(model_dir, extra=extra)


__all__ = [
    "ModelDirError",
    "PopularityRecommender",
    "Recommender",
    "build_model",
    "load_network",
    "load_recommender",
    "read_sidecar",
    "resolve_device",
    "save_model",
    "save_popularity",
]
