"""Train (or warm-start and fine-tune) a sequence model and write it as a model directory.

AdamW with linear warmup and cosine decay, gradient clipping, early stopping on the validation
NDCG@10 (samples and validation split: ``windows``; where weights start: ``warm_start``).

After every epoch the ``TrainState`` is written to ``out_dir/checkpoint``; a killed run called again
with the same ``out_dir`` and configs resumes from it, and per-epoch reseeding makes the resumed run
reproduce the uninterrupted one. Under ``torchrun`` (``WORLD_SIZE > 1``, one node or several) the
model is wrapped in DDP, each rank trains on its own slice of every epoch's windows (``distributed``),
and only rank 0 writes files while the others wait for it.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from recsys_tasks.config import ModelConfig, TrainConfig, to_dict
from recsys_tasks.data.sequences import ItemVocab, SequenceData
from recsys_tasks.modeling.artifacts import NETWORK_KINDS, resolve_device, save_model
from recsys_tasks.modeling.baselines import popularity_counts
from recsys_tasks.modeling.checkpoint import CHECKPOINT_DIR, TrainState, fingerprint, seed_everything
from recsys_tasks.modeling.distributed import (
    agree_across_ranks,
    rank_batches,
    steps_per_epoch,
    wait_for_rank0,
)
from recsys_tasks.modeling.hardware import CPU_BF16_AUTO, apply_threads, autocast_bf16
from recsys_tasks.modeling.losses import choose_loss
from recsys_tasks.modeling.metrics import metrics_from_ranks, target_ranks
from recsys_tasks.modeling.warm_start import Start, starting_model
from recsys_tasks.modeling.windows import (
    TrainError,
    TrainingData,
    collate,
    history_batch,
    positions_per_batch,
    prepare,
)

log = logging.getLogger(__name__)

VAL_K = 10
VAL_KEYS = (f"hr@{VAL_K}", f"ndcg@{VAL_K}", f"mrr@{VAL_K}")
VAL_METRIC = f"ndcg@{VAL_K}"  # early stopping and the best weights follow it


@dataclass
class TrainResult:
    """Where the model went and how training went."""

    model_dir: Path
    metrics: dict[str, float]
    history: list[dict[str, Any]] = field(default_factory=list)
    epochs: int = 0
    steps: int = 0
    seconds: float = 0.0
    seqs_per_s: float = 0.0


@dataclass(frozen=True)
class EpochPlan:
    """What every epoch of one run shares: the windows, how a batch steps, and when to stop."""

    forward: nn.Module  # the model, or its DDP / compiled wrapper
    data: TrainingData
    cfg: TrainConfig
    device: torch.device
    autocast: bool  # bf16 autocast (CUDA, or a CPU with native bf16: ``hardware.autocast_bf16``)
    epochs: int
    origin: float  # time.monotonic() at which an uninterrupted run would have started
    world: int = 1
    rank: int = 0

    @property
    def steps_per_epoch(self) -> int:
        """The same on every rank, so DDP's all-reduces pair up."""
        return steps_per_epoch(len(self.data.windows), batch_size=self.cfg.batch_size, world=self.world)

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    def batches(self, rng: np.random.Generator) -> list[np.ndarray]:
        """This rank's batches of window indices for the epoch, shuffled by ``rng``."""
        order = rng.permutation(len(self.data.windows))
        return rank_batches(order, batch_size=self.cfg.batch_size, world=self.world, rank=self.rank)

    def time_used(self) -> float:
        """Fraction of ``max_train_seconds`` spent (0 without a cap)."""
        if self.cfg.max_train_seconds is None:
            return 0.0
        return (time.monotonic() - self.origin) / self.cfg.max_train_seconds


def _lr_at(step: int, total: int, cfg: TrainConfig, time_fraction: float = 0.0) -> float:
    """Linear warmup over the first ``warmup_fraction`` of the run, then cosine decay to 0.

    Progress is the larger of the step fraction and the fraction of ``max_train_seconds`` used, for
    the warmup as for the decay: a time-capped run of many planned epochs warms up within its time
    budget (not within steps it will never reach) and still anneals fully before the cap.
    """
    share = cfg.warmup_fraction
    warmup = max(1, int(share * total))
    warm = max((step + 1) / warmup, time_fraction / share if share > 0 else 1.0)
    if warm < 1.0:
        return cfg.learning_rate * warm
    by_steps = (step - warmup) / max(1, total - warmup)
    by_time = (time_fraction - share) / (1.0 - share) if share < 1.0 else 1.0
    progress = min(1.0, max(0.0, by_steps, by_time))
    return cfg.learning_rate * 0.5 * (1.0 + math.cos(math.pi * progress))


def _make_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    # nanoGPT's rule: decay matrices (and embeddings), not biases and norms.
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.learning_rate, betas=(0.9, 0.98), fused=device.type == "cuda")


@torch.no_grad()
def evaluate_next_item(
    model: nn.Module, data: TrainingData, *, device: torch.device, autocast: bool, batch: int = 1024
) -> dict[str, float]:
    """HR/NDCG/MRR@10 of the held-out last item, ranked against the full catalogue."""
    if not len(data.val_users):
        return dict.fromkeys(VAL_KEYS, 0.0)
    was_training = model.training
    model.eval()
    ranks = []
    for i in range(0, len(data.val_users), batch):
        users = data.val_users[i : i + batch]
        x, ty, ga, lengths = (t.to(device) for t in history_batch(data, users, model.cfg.max_len))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            scores = model.next_item_scores(x, ty, ga, lengths).float()  # (B, V)
        targets = torch.as_tensor(data.val_targets[i : i + batch], device=scores.device)
        ranks.append(target_ranks(scores, targets).cpu().numpy())
    model.train(was_training)
    return metrics_from_ranks(np.concatenate(ranks), k=VAL_K)


def _step(state: TrainState, plan: EpochPlan, rows: np.ndarray) -> float:
    """One optimizer step on the windows ``rows`` (B, 3); returns the batch loss."""
    batch = collate(plan.data, rows)
    if plan.device.type == "cuda":  # a copy from pinned memory overlaps with the GPU's work
        batch = tuple(t.pin_memory() for t in batch)
    x, ty, ga, y = (t.to(plan.device, non_blocking=True) for t in batch)  # (B, T) each
    lr = _lr_at(state.step, plan.total_steps, plan.cfg, plan.time_used())
    for group in state.optimizer.param_groups:
        group["lr"] = lr
    with torch.autocast(plan.device.type, dtype=torch.bfloat16, enabled=plan.autocast):
        _, loss = plan.forward(x, ty, ga, y)
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if plan.cfg.grad_clip > 0:
        nn.utils.clip_grad_norm_(state.model.parameters(), plan.cfg.grad_clip)
    state.optimizer.step()
    state.step += 1
    return float(loss.detach())


def _run_epoch(state: TrainState, plan: EpochPlan) -> tuple[float, int, float]:
    """One pass over this rank's share of the windows; returns (mean loss, sequences seen, seconds)."""
    epoch_batches = plan.batches(state.reseed())
    state.model.train()
    start = last_log = time.monotonic()
    total_loss, batches, seen = 0.0, 0, 0
    for indices in epoch_batches:
        rows = plan.data.windows[indices]
        total_loss += _step(state, plan, rows)
        batches += 1
        seen += len(rows)
        now = time.monotonic()
        if now - last_log >= plan.cfg.log_every_seconds:
            last_log = now
            log.info(
                "epoch %d step %d/%d loss %.4f %.0f seqs/s",
                state.epoch + 1, state.step, plan.total_steps, total_loss / batches, seen / (now - start),
            )
        if plan.time_used() >= 1.0:
            log.warning(
                "max_train_seconds reached in epoch %d at step %d; stopping", state.epoch + 1, state.step
            )
            break
    if plan.world > 1:
        log.info(
            "rank %d of world %d: epoch %d trained on %d of %d windows",
            plan.rank, plan.world, state.epoch + 1, seen, len(plan.data.windows),
        )
    return total_loss / max(1, batches), seen, time.monotonic() - start


def _on_any_rank(flag: bool, plan: EpochPlan) -> bool:
    """``flag`` or-ed over the ranks: they must leave the loop together, or the others hang in DDP's
    next all-reduce."""
    if plan.world == 1:
        return flag
    t = torch.tensor([float(flag)], device=plan.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def _fit(
    state: TrainState, plan: EpochPlan, ckpt: Path, on_checkpoint: Callable[[Path], None] | None = None
) -> tuple[int, float]:
    """Epochs until the last, patience or time runs out; returns (sequences seen, seconds in epochs)."""
    seen_total, train_seconds = 0, 0.0
    if state.bad_epochs >= plan.cfg.patience:  # resumed a run that had already stopped early
        return seen_total, train_seconds
    while state.epoch < plan.epochs:
        loss, seen, seconds = _run_epoch(state, plan)
        seen_total, train_seconds = seen_total + seen, train_seconds + seconds
        val = evaluate_next_item(state.model, plan.data, device=plan.device, autocast=plan.autocast)
        speed = seen / max(seconds, 1e-9)
        state.end_epoch({"loss": loss, "seconds": seconds, "seqs_per_s": speed, **val}, score=val[VAL_METRIC])
        log.info(
            "epoch %d/%d loss %.4f val hr@10 %.4f ndcg@10 %.4f (%.1fs, %.0f seqs/s)",
            state.epoch, plan.epochs, loss, val["hr@10"], val["ndcg@10"], seconds, speed,
        )
        out_of_time = plan.time_used() >= 1.0
        if plan.rank == 0:
            state.seconds = time.monotonic() - plan.origin
            state.save(ckpt)
            if on_checkpoint is not None:
                on_checkpoint(ckpt)
        flat = state.bad_epochs >= plan.cfg.patience
        if _on_any_rank(flat or out_of_time, plan):
            if flat:
                log.info(
                    "early stopping after epoch %d: val ndcg@10 flat for %d epochs",
                    state.epoch, state.bad_epochs,
                )
            break
    return seen_total, train_seconds


def _join_process_group(train_cfg: TrainConfig) -> tuple[torch.device, int, int]:
    """(device, world size, rank); under torchrun this process joins the group first."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = resolve_device(train_cfg.device)
    if world > 1:
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if train_cfg.precision == "bf16" and not autocast_bf16("bf16", device, cpu_auto=False):
        log.warning("precision=bf16 needs CUDA or a CPU with native bf16; training in fp32 on %s", device)
    return device, world, rank


def _plan(
    start: Start,
    data: TrainingData,
    train_cfg: TrainConfig,
    device: torch.device,
    *,
    origin: float,
    world: int,
    rank: int,
) -> EpochPlan:
    """The epoch plan, with the model wrapped for DDP (``world > 1``) and compiled if asked."""
    forward: nn.Module = start.model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        forward = DistributedDataParallel(
            forward, device_ids=[device.index] if device.type == "cuda" else None
        )
    if train_cfg.compile:
        forward = torch.compile(forward)
    autocast = autocast_bf16(train_cfg.precision, device, cpu_auto=CPU_BF16_AUTO)
    return EpochPlan(forward, data, train_cfg, device, autocast, start.epochs, origin, world, rank)


def train_model(
    *,
    train: SequenceData,
    vocab: ItemVocab,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    out_dir: Path,
    item_text: Mapping[str, str] | None = None,
    init_from: Path | None = None,
    kind: str = "transformer",
    text_cache_dir: Path | None = None,
    on_checkpoint: Callable[[Path], None] | None = None,
) -> TrainResult:
    """Train a ``kind`` ("transformer", "pretrained" or "gru") model on ``train`` and write it to ``out_dir``.

    With ``init_from`` (the champion's model directory) the champion is grown to ``vocab`` and
    fine-tuned for ``train_cfg.fine_tune_epochs`` (all ``epochs`` with ``full_retrain``) using the
    champion's model config. ``text_cache_dir`` defaults to ``out_dir.parent / "text_cache"``.
    ``on_checkpoint(dir)`` runs on rank 0 after each epoch's checkpoint is written (e.g. to copy it
    to the artifact store, so a retry on another worker resumes from it).
    """
    if kind not in NETWORK_KINDS:
        raise TrainError(
            f"kind={kind!r}: train_model trains one of {NETWORK_KINDS}; use save_popularity for popularity"
        )
    if len(vocab) < 2:
        raise TrainError("the vocabulary is empty: nothing to recommend; check the extracted interval")
    out_dir = Path(out_dir)
    t0 = time.monotonic()
    apply_threads(train_cfg.num_threads, what="training")  # before any parallel work of this process
    device, world, rank = _join_process_group(train_cfg)
    seed_everything(train_cfg.seed)
    start = starting_model(
        kind, model_cfg, train_cfg, vocab, init_from=init_from, item_text=item_text,
        text_cache_dir=text_cache_dir if text_cache_dir is not None else out_dir.parent / "text_cache",
    )
    start.model.set_popularity(popularity_counts(train, len(vocab)))
    start.model.to(device)
    replay = train_cfg.replay_fraction if init_from is not None else 1.0  # fine-tuning replays a share
    data = prepare(train, start.model_cfg, train_cfg.seed, replay_fraction=replay)
    positions = positions_per_batch(data, train_cfg.batch_size)
    cost_cfg = getattr(start.model, "cost_config", start.model_cfg)  # a backbone's own width and depth
    start.model.sampled_softmax = choose_loss(cost_cfg, len(vocab), positions=positions) == "sampled"
    state = TrainState(
        model=start.model,
        optimizer=_make_optimizer(start.model, train_cfg, device),
        fingerprint=fingerprint(start.kind, start.model_cfg, train_cfg, vocab, len(train), init_from),
        seed=train_cfg.seed,
    )
    ckpt = out_dir / CHECKPOINT_DIR
    if state.load(ckpt):
        log.info("resuming from %s after epoch %d (step %d)", ckpt, state.epoch, state.step)
    # Same data, config and checkpoint on every rank, or DDP's collectives stop pairing up.
    agree_across_ranks(
        (state.fingerprint, len(data.windows), state.epoch, state.step),
        what="(fingerprint, windows, epoch, step)", world=world,
    )
    plan = _plan(start, data, train_cfg, device, origin=t0 - state.seconds, world=world, rank=rank)
    log.info(
        "training %s: %d sequences, %d windows, %d items, %d epochs x %d steps on %s%s",
        start.kind, len(train), len(data.windows), len(vocab) - 1, plan.epochs, plan.steps_per_epoch,
        device, f" (world {world})" if world > 1 else "",
    )
    seen, train_seconds = _fit(state, plan, ckpt, on_checkpoint)
    state.model.load_state_dict(state.best_weights)
    if hasattr(state.model, "fill_unknown_from_text"):  # pretrained: items never interacted with
        state.model.fill_unknown_from_text()
    best = state.history[state.best_epoch - 1] if state.best_epoch else {}
    result = TrainResult(
        model_dir=out_dir, metrics={k: float(best[k]) for k in VAL_KEYS if k in best}, history=state.history,
        epochs=len(state.history), steps=state.step, seconds=time.monotonic() - plan.origin,
        seqs_per_s=seen / train_seconds if train_seconds else 0.0,
    )
    if rank == 0:
        _write_model(result, state, start, vocab, train_cfg)
        shutil.rmtree(ckpt, ignore_errors=True)
        log.info(
            "wrote %s: val %s after %d epochs, %.1fs", out_dir, result.metrics, result.epochs, result.seconds
        )
    wait_for_rank0(world, device)
    return result


def _write_model(
    result: TrainResult, state: TrainState, start: Start, vocab: ItemVocab, train_cfg: TrainConfig
) -> None:
    """The model directory: the best weights, and a sidecar that says how they were trained."""
    save_model(
        result.model_dir,
        kind=start.kind,
        vocab=vocab,
        popularity=start.model.popularity.cpu().numpy(),
        model=start.model,
        model_cfg=start.model_cfg,
        extra={
            "epoch": state.best_epoch,
            "step": state.step,
            "metrics": result.metrics,
            "parent": start.parent,
            "train_config": to_dict(train_cfg),
            "history": state.history,
            "seconds": result.seconds,
        },
    )


__all__ = ["EpochPlan", "TrainError", "TrainResult", "evaluate_next_item", "train_model"]
