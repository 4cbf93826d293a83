"""Similar items: each item's nearest items by cosine of the model's item vectors."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import date

import numpy as np

from recsys_tasks.data.publication import SimilarItemRow
from recsys_tasks.data.sequences import ItemVocab
from recsys_tasks.serving import rules as R

log = logging.getLogger(__name__)


def similar_item_rows(
    item_vectors: np.ndarray,
    vocab: ItemVocab,
    *,
    n: int,
    as_of: date,
    model_version: str,
    eligible: np.ndarray | None = None,
    batch_items: int = 1024,
) -> Iterator[SimilarItemRow]:
    """Each eligible item's ``n`` nearest items by cosine, best first."""
    unit = R.normalise(item_vectors)
    mask = np.ones(len(vocab), dtype=bool) if eligible is None else eligible.copy()
    mask[0] = False
    mask &= np.linalg.norm(unit, axis=1) > 0
    ids = vocab.item_ids
    rows = np.flatnonzero(mask)
    for start in range(0, len(rows), batch_items):
        chunk = rows[start : start + batch_items]
        neighbours, sims = R.top_neighbours(unit, chunk, n=n, eligible=mask)
        for item, nbrs, scores in zip(chunk.tolist(), neighbours, sims, strict=True):
            name = ids[item - 1]
            for rank, (other, score) in enumerate(zip(nbrs.tolist(), scores.tolist(), strict=True), start=1):
                if other > 0:
                    yield SimilarItemRow(as_of, name, rank, ids[other - 1], float(score), model_version)
