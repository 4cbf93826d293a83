"""A trained model directory as a recommender: load it, score histories, stream top-K in chunks.

A model directory holds ``model.safetensors`` (weights plus the ``popularity`` buffer) and the
sidecar ``model.json``::

    {"format_version": 1, "kind": "transformer" | "pretrained" | "gru" | "popularity",
     "model_config": {...} | null, "item_ids": [...], "epoch": int, "step": int,
     "metrics": {...}, "parent": str | null, "created_at": ISO-8601, ...}

A ``pretrained`` model directory holds only what was trained (LoRA adapter, projections, item
rows, text vectors); its sidecar's ``base_checkpoint`` names the frozen checkpoint and the sha256 of
its files, and loading refuses a checkpoint whose files differ.

No pickle anywhere: weights are safetensors, everything else is JSON.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from recsys_tasks.config import ModelConfig, to_dict
from recsys_tasks.data.sequences import ItemVocab
from recsys_tasks.timeutil import now

log = logging.getLogger(__name__)

WEIGHTS_FILE = "model.safetensors"
SIDECAR_FILE = "model.json"
FORMAT_VERSION = 1
KINDS = ("transformer", "pretrained", "gru", "popularity")
NETWORK_KINDS = KINDS[:3]


class ModelDirError(ValueError):
    """A model directory is missing, incomplete or of an unknown kind; the message says which file."""


def resolve_device(device: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def build_model(kind: str, cfg: ModelConfig, num_items: int) -> nn.Module:
    """A fresh network of ``kind`` (one of ``NETWORK_KINDS``) for ``num_items`` embedding rows."""
    if kind == "transformer":
        from recsys_tasks.modeling.model import SeqRecModel

        return SeqRecModel(cfg, num_items)
    if kind == "pretrained":
        from recsys_tasks.modeling.pretrained import PretrainedSeqModel

        return PretrainedSeqModel(cfg, num_items)
    if kind == "gru":
        from recsys_tasks.modeling.baselines import GRURecModel

        return GRURecModel(cfg, num_items)
    raise ModelDirError(f"model kind {kind!r} has no network; use one of {NETWORK_KINDS}")


def save_model(
    model_dir: Path,
    *,
    kind: str,
    vocab: ItemVocab,
    popularity: np.ndarray,
    model: nn.Module | None = None,
    model_cfg: ModelConfig | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``model.safetensors`` and the ``model.json`` sidecar into ``model_dir``; return it."""
    if kind not in KINDS:
        raise ModelDirError(f"unknown model kind {kind!r}; use one of {KINDS}")
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    if model is not None:
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    else:
        tensors = {"popularity": torch.as_tensor(np.asarray(popularity), dtype=torch.float32)}
    # Write-then-rename so a reader (or a resumed run) never sees half a file.
    tmp = model_dir / (WEIGHTS_FILE + ".tmp")
    save_file(tensors, str(tmp))
    tmp.replace(model_dir / WEIGHTS_FILE)
    sidecar: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "model_config": to_dict(model_cfg) if model_cfg is not None else None,
        "item_ids": vocab.item_ids,
        "epoch": 0,
        "step": 0,
        "metrics": {},
        "parent": None,
        "created_at": now().isoformat(),
    }
    if getattr(model, "base_checkpoint", None) is not None:
        sidecar["base_checkpoint"] = model.base_checkpoint
    sidecar.update(extra or {})
    tmp_json = model_dir / (SIDECAR_FILE + ".tmp")
    tmp_json.write_text(json.dumps(sidecar, indent=1), encoding="utf-8")
    tmp_json.replace(model_dir / SIDECAR_FILE)
    return model_dir


def read_sidecar(model_dir: Path) -> dict[str, Any]:
    """The parsed ``model.json`` of ``model_dir``."""
    path = Path(model_dir) / SIDECAR_FILE
    if not path.is_file():
        raise ModelDirError(
            f"{path} does not exist; pass a directory written by train_model or save_popularity"
        )
    sidecar = json.loads(path.read_text(encoding="utf-8"))
    if sidecar.get("kind") not in KINDS:
        raise ModelDirError(f"{path}: unknown kind {sidecar.get('kind')!r}; expected one of {KINDS}")
    return sidecar


def load_network(model_dir: Path, *, device: str = "cpu") -> tuple[nn.Module, dict[str, Any], ItemVocab]:
    """The network, sidecar and vocabulary of a transformer/gru model directory."""
    sidecar = read_sidecar(model_dir)
    vocab = ItemVocab(sidecar["item_ids"])
    # Sidecars written before ``repeat_bias`` existed describe a model without it.
    cfg = ModelConfig(**{"repeat_bias": False, **sidecar["model_config"]})
    model = build_model(sidecar["kind"], cfg, len(vocab))
    _same_base_checkpoint(model, sidecar, model_dir)
    weights = Path(model_dir) / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelDirError(f"{weights} does not exist; the model directory is incomplete: retrain it")
    model.load_state_dict(load_file(str(weights)))
    return model.to(resolve_device(device)).eval(), sidecar, vocab


def _same_base_checkpoint(model: nn.Module, sidecar: dict[str, Any], model_dir: Path) -> None:
    """A pretrained model's adapter only means something on the checkpoint it was trained on."""
    if sidecar["kind"] != "pretrained":
        return
    expected = (sidecar.get("base_checkpoint") or {}).get("sha256")
    found = model.base_checkpoint["sha256"]
    if expected != found:
        raise ModelDirError(
            f"{model_dir} was trained on {sidecar['model_config']['backbone']!r} with sha256 {expected}, but "
            f"the checkpoint found there now has sha256 {found}: restore the original checkpoint files on "
            "this worker, or retrain with train.full_retrain"
        )
