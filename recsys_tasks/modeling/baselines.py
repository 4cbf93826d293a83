"""Baselines beside the transformer: most-popular and a GRU4Rec-style recurrent model.

``GRURecModel`` follows Hidasi et al., "Session-based Recommendations with Recurrent Neural
Networks" (ICLR 2016) as RecBole implements it (item embedding -> dropout -> GRU -> dense), trained
with the same full-softmax next-item loss and right-padded batches as ``SeqRecModel``: both are a
``TiedItemOutput``, so ``training`` and ``recommender`` drive them the same way.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from recsys_tasks.config import ModelConfig
from recsys_tasks.data.sequences import SequenceData
from recsys_tasks.modeling.model import TiedItemOutput, init_embeddings


class GRURecModel(TiedItemOutput):
    """GRU4Rec: a GRU over item embeddings; logits tied to the item embeddings."""

    def __init__(self, cfg: ModelConfig, num_items: int) -> None:
        super().__init__(cfg, num_items)
        init_embeddings(self.item_emb)
        d = cfg.hidden_size
        self.emb_drop = nn.Dropout(cfg.dropout)
        self.gru = nn.GRU(d, 2 * d, num_layers=cfg.num_layers, batch_first=True)
        self.proj = nn.Linear(2 * d, d)

    def hidden(
        self, items: torch.Tensor,
        event_types: torch.Tensor | None = None, time_gaps: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, T) -> (B, T, C); a recurrent net is causal, and right padding comes after real items."""
        del event_types, time_gaps  # GRU4Rec uses item ids only
        x = self.emb_drop(self.item_emb(items))  # (B, T, C)
        out, _ = self.gru(x)  # (B, T, 2C)
        return self.proj(out)  # (B, T, C)


def popularity_counts(
    train: SequenceData, num_items: int, *, recent_seconds: float | None = None
) -> np.ndarray:
    """Interaction counts per item index (length ``num_items``; index 0 stays 0).

    With ``recent_seconds``, only interactions within that long before the newest training
    interaction count ("popular lately" rather than "popular ever").
    """
    counts = np.zeros(num_items, dtype=np.float64)
    if not len(train):
        return counts
    _, items, _, ts = train.flat()
    if recent_seconds is not None and len(ts):
        items = items[ts >= int(ts.max()) - recent_seconds]
    counts += np.bincount(items.astype(np.int64), minlength=num_items)[:num_items]
    counts[0] = 0.0
    return counts


__all__ = ["GRURecModel", "popularity_counts"]
