"""The resumable state of a training run (``TrainState``), saved and restored as one unit.

``out_dir/checkpoint`` holds ``tensors.safetensors`` (keys ``model.*``, ``best.*`` and
``optimizer.<param index>.<slot>``) and ``state.json`` (everything else). No pickle. The directory
is replaced whole after every epoch, so a kill leaves either the previous or the new checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from recsys_tasks.config import ModelConfig, TrainConfig, to_dict
from recsys_tasks.data.sequences import ItemVocab

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoint"
TENSORS_FILE = "tensors.safetensors"
STATE_FILE = "state.json"
#: Part of the fingerprint, so a checkpoint of an older layout is ignored rather than misread.
FORMAT_VERSION = 2
_JSON_FIELDS = (
    "fingerprint", "seed", "epoch", "step", "history", "best_metric", "best_epoch", "bad_epochs", "seconds",
)


def fingerprint(
    kind: str,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    vocab: ItemVocab,
    num_sequences: int,
    init_from: Path | None,
) -> str:
    """Hash of what a run trains on and how: a checkpoint with another one is not resumed."""
    blob = json.dumps(
        [FORMAT_VERSION, kind, to_dict(model_cfg), to_dict(train_cfg), vocab.item_ids, num_sequences,
         str(init_from)],
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def seed_everything(seed: int) -> None:
    """Seed torch and numpy's global generators (dropout, sampled negatives, weight init)."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def _cpu_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


@dataclass
class TrainState:
    """Everything a killed run needs to continue exactly where it stopped."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    fingerprint: str
    seed: int  # epoch e orders its windows from seed + e and seeds dropout with seed + e + 1
    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps taken
    history: list[dict[str, Any]] = field(default_factory=list)  # one row per completed epoch
    best_metric: float = -1.0  # best validation score so far
    best_epoch: int = 0  # the (first) epoch that reached it; 0 before any
    bad_epochs: int = 0  # epochs since it last improved
    seconds: float = 0.0  # wall time of every attempt so far, up to the last save
    best_weights: dict[str, torch.Tensor] = field(default_factory=dict)  # CPU copy at best_metric

    def __post_init__(self) -> None:
        if not self.best_weights:
            self.best_weights = _cpu_copy(self.model)

    def reseed(self) -> np.random.Generator:
        """Seed the coming epoch and return its window-order generator.

        Both depend on the epoch number alone, so a resumed run draws what an uninterrupted one drew.
        """
        seed_everything(self.seed + self.epoch + 1)
        return np.random.default_rng(self.seed + self.epoch)

    def end_epoch(self, row: dict[str, float], *, score: float) -> None:
        """Count an epoch and its history row; keep the weights if ``score`` beats the best so far."""
        self.epoch += 1
        self.history.append({"epoch": self.epoch, **row})
        if score > self.best_metric:
            self.best_metric, self.best_epoch, self.bad_epochs = score, self.epoch, 0
            self.best_weights = _cpu_copy(self.model)
        else:
            self.bad_epochs += 1

    def save(self, ckpt: Path) -> None:
        """Write the state to the directory ``ckpt``, replacing it whole."""
        opt = self.optimizer.state_dict()
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        tensors.update({f"best.{k}": v for k, v in self.best_weights.items()})
        tensors.update({
            f"optimizer.{idx}.{name}": torch.as_tensor(value)
            for idx, slot in opt["state"].items()
            for name, value in slot.items()
        })
        scalars = {name: getattr(self, name) for name in _JSON_FIELDS}
        tmp = ckpt.with_name(ckpt.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp / TENSORS_FILE))
        state = {**scalars, "param_groups": opt["param_groups"]}
        (tmp / STATE_FILE).write_text(json.dumps(state, indent=1), encoding="utf-8")
        old = ckpt.with_name(ckpt.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if ckpt.exists():
            ckpt.rename(old)
        tmp.rename(ckpt)
        shutil.rmtree(old, ignore_errors=True)

    def load(self, ckpt: Path) -> bool:
        """Restore from ``ckpt`` if it holds a state of the same fingerprint; say whether it did."""
        if not (ckpt / STATE_FILE).is_file():
            return False
        saved = json.loads((ckpt / STATE_FILE).read_text(encoding="utf-8"))
        if saved.get("fingerprint") != self.fingerprint:
            log.warning("ignoring checkpoint %s: it was written for other data or configs", ckpt)
            return False
        parts: dict[str, dict[str, torch.Tensor]] = {"model": {}, "best": {}, "optimizer": {}}
        for key, value in load_file(str(ckpt / TENSORS_FILE)).items():
            part, name = key.split(".", 1)
            parts[part][name] = value
        slots: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in parts["optimizer"].items():
            idx, name = key.split(".", 1)
            slots.setdefault(int(idx), {})[name] = value
        self.model.load_state_dict(parts["model"])
        # load_state_dict moves each slot to its parameter's device (and "step" too when fused)
        groups = [  # JSON turned tuples (AdamW's betas) into lists
            {k: tuple(v) if isinstance(v, list) and k != "params" else v for k, v in group.items()}
            for group in saved["param_groups"]
        ]
        self.optimizer.load_state_dict({"state": slots, "param_groups": groups})
        self.best_weights = parts["best"]
        for name in _JSON_FIELDS:
            setattr(self, name, saved[name])
        return True


__all__ = ["CHECKPOINT_DIR", "TrainState", "fingerprint", "seed_everything"]
