"""Where a run's weights start: the champion grown to tonight's vocabulary, or a fresh network.

Items new since the champion get a starting row from their text (title | category) mapped into
the model's embedding space, so they can be recommended before anyone has interacted with them; a
fresh network takes its item rows from the principal components of the text vectors.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from recsys_tasks.config import ModelConfig, TrainConfig
from recsys_tasks.data.sequences import ItemVocab
from recsys_tasks.modeling.artifacts import build_model, load_network
from recsys_tasks.modeling.text import encode_item_texts, fit_text_projection, pca_projection
from recsys_tasks.modeling.windows import TrainError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Start:
    """The network a run starts from and what it is: fresh, or the champion grown to the vocabulary."""

    model: nn.Module
    kind: str
    model_cfg: ModelConfig
    epochs: int
    parent: str | None = None


def starting_model(
    kind: str,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    vocab: ItemVocab,
    *,
    init_from: Path | None,
    item_text: Mapping[str, str] | None,
    text_cache_dir: Path,
) -> Start:
    """The champion in ``init_from`` grown to ``vocab`` (trained with its own config), or a fresh network.

    A champion is fine-tuned for ``train_cfg.fine_tune_epochs`` (all ``epochs`` with ``full_retrain``).
    """
    if init_from is not None:
        model, champion = grow_model(init_from, vocab, item_text=item_text, text_cache_dir=text_cache_dir)
        epochs = train_cfg.epochs if train_cfg.full_retrain else train_cfg.fine_tune_epochs
        parent = champion.get("model_version") or str(init_from)
        return Start(model, champion["kind"], model.cfg, epochs, parent)
    model = build_model(kind, model_cfg, len(vocab))
    if kind == "pretrained":  # its items are their text: every item gets its text vector
        _fill_text_vectors(model, vocab, item_text or {}, text_cache_dir, first_row=1)
    elif item_text and model_cfg.use_item_text and kind == "transformer":
        init_from_text(model, vocab, item_text, text_cache_dir)
    return Start(model, kind, model_cfg, train_cfg.epochs)


def grow_model(
    init_from: Path,
    vocab: ItemVocab,
    *,
    item_text: Mapping[str, str] | None = None,
    text_cache_dir: Path | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """The champion in ``init_from`` with its item table grown to ``vocab`` (old rows copied exactly).

    New rows come from the item texts projected into the embedding space (a ridge fit on the old
    items' text vectors), or stay small random vectors without text.
    """
    old, sidecar, old_vocab = load_network(init_from, device="cpu")
    n_old = len(old_vocab)
    if vocab.item_ids[: n_old - 1] != old_vocab.item_ids:
        raise TrainError(
            f"the vocabulary does not extend the one of {init_from}: build it with "
            "ItemVocab(champion item_ids) and extend() so old indices keep their meaning"
        )
    model = build_model(sidecar["kind"], old.cfg, len(vocab))
    new_state = model.state_dict()
    for name, tensor in old.state_dict().items():
        if new_state[name].shape == tensor.shape:
            new_state[name] = tensor.clone()
        else:  # the item table (and popularity): copy the old rows, keep fresh rows for new items
            rows = new_state[name].clone()
            rows[:n_old] = tensor
            new_state[name] = rows
    model.load_state_dict(new_state)
    added = vocab.item_ids[n_old - 1 :]
    if added and sidecar["kind"] == "pretrained":
        _fill_text_vectors(model, vocab, item_text or {}, text_cache_dir, first_row=n_old)
    elif added and item_text and old.cfg.use_item_text:
        _project_new_rows(model, vocab, n_old, item_text, text_cache_dir)
    log.info("warm start from %s: %d old items, %d new", init_from, n_old - 1, len(added))
    return model, sidecar


def _project_new_rows(
    model: nn.Module, vocab: ItemVocab, n_old: int, item_text: Mapping[str, str], cache_dir: Path | None
) -> None:
    """Rows ``n_old..`` from their text vectors through a ridge map fitted on the old rows."""
    found = _text_rows(vocab, item_text, model.cfg.text_encoder, cache_dir)
    if found is None:
        return
    have, vecs = found  # (M,) row indices, (M, D_text)
    old_rows, new_rows = have[have < n_old], have[have >= n_old]
    if len(old_rows) < 2 or not len(new_rows):
        return
    emb = model.item_emb.weight.detach()  # (V, C)
    w = fit_text_projection(vecs[have < n_old], emb[old_rows].numpy())  # (D_text, C)
    with torch.no_grad():
        emb[new_rows] = torch.from_numpy(vecs[have >= n_old] @ w)


def init_from_text(
    model: nn.Module, vocab: ItemVocab, item_text: Mapping[str, str], cache_dir: Path | None
) -> None:
    """Fresh item rows from the principal components of their text vectors (scaled like random init)."""
    found = _text_rows(vocab, item_text, model.cfg.text_encoder, cache_dir)
    if found is None:
        return
    rows, vecs = found
    with torch.no_grad():
        fresh = torch.from_numpy(pca_projection(vecs, model.cfg.hidden_size))
        model.item_emb.weight[torch.from_numpy(rows)] = fresh


def _fill_text_vectors(
    model: nn.Module, vocab: ItemVocab, item_text: Mapping[str, str], cache_dir: Path | None, *, first_row: int
) -> None:
    """Text vectors of rows ``first_row..`` (items without a text keep the zero vector: id row only)."""
    found = _text_rows(vocab, item_text, model.cfg.text_encoder, cache_dir)
    rows = np.arange(first_row, len(vocab))
    if found is not None:
        have, vecs = found
        keep = have >= first_row
        model.set_item_text(have[keep], vecs[keep])
        rows = np.setdiff1d(rows, have)
    if len(rows):
        log.warning(
            "%d of %d items have no title or category: the pretrained model knows them only by id, so they "
            "score like untrained items until people interact with them", len(rows), len(vocab) - first_row,
        )


def _text_rows(
    vocab: ItemVocab, item_text: Mapping[str, str], encoder: str, cache_dir: Path | None
) -> tuple[np.ndarray, np.ndarray] | None:
    """(indices (M,), text vectors (M, D_text)) of the vocabulary items that have a text."""
    texts = {i + 1: item_text[item] for i, item in enumerate(vocab.item_ids) if item in item_text}
    if not texts:
        return None
    encoded = encode_item_texts(texts, encoder=encoder, cache_dir=cache_dir)
    rows = np.fromiter(encoded.keys(), dtype=np.int64)
    return rows, np.stack([encoded[r] for r in rows])


__all__ = ["Start", "grow_model", "init_from_text", "starting_model"]
