"""Train (or warm-start and fine-tune) a sequence model and write it as a model directory.

Samples: each user's sequence is cut into windows of ``max_len + 1`` items (the latest window,
then earlier ones with non-overlapping targets); every position of a window predicts the next item.
Validation for early stopping holds out the last item of each training sequence with at least 3
items. AdamW with linear warmup and cosine decay, gradient clipping, early stopping on val NDCG@10.

A checkpoint (weights, best weights, optimizer state, history) is written to ``out_dir/checkpoint``
after every epoch; a killed run called again with the same ``out_dir`` and configs resumes from it.
Per-epoch RNG is reseeded from ``seed + epoch``, so a resumed run reproduces the uninterrupted one.
Under ``torchrun`` (``WORLD_SIZE > 1``) the model is wrapped in DDP, each rank trains on its share
of the windows, and only rank 0 writes files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from recsys_tasks.config import ModelConfig, TrainConfig, to_dict
from recsys_tasks.data.sequences import ItemVocab, SequenceData
from recsys_tasks.modeling.artifacts import build_model, load_network, resolve_device, save_model
from recsys_tasks.modeling.baselines import popularity_counts
from recsys_tasks.modeling.metrics import metrics_from_ranks, rank_of_targets
from recsys_tasks.modeling.model import time_gap_buckets

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoint"
VAL_K = 10
#: Validation users are capped (a fixed random subset) so evaluation stays cheap on big data.
MAX_VAL_USERS = 20_000


class TrainError(ValueError):
    """Training cannot start with these inputs; the message says what to change."""


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


# ---------------------------------------------------------------------------------------------
# samples


@dataclass
class _Sequences:
    """Training sequences with precomputed gap buckets, and the validation split."""

    items: list[np.ndarray]
    types: list[np.ndarray]
    gaps: list[np.ndarray]
    windows: np.ndarray  # (N, 3): user, start, end; inputs items[start:end-1], targets items[start+1:end]
    val_users: np.ndarray  # positions of users whose last item is held out
    val_targets: np.ndarray


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


def _prepare(train: SequenceData, cfg: ModelConfig, seed: int) -> _Sequences:
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
    return _Sequences(items, types, gaps, windows, val_u, val_t)


def replay_windows(data: _Sequences, fraction: float, *, seed: int) -> np.ndarray:
    """Every user's latest window plus a random ``fraction`` of the earlier ones (fine-tuning replay)."""
    lengths = np.array([len(s) for s in data.items])
    latest = data.windows[:, 2] == lengths[data.windows[:, 0]]
    keep = latest | (np.random.default_rng(seed).random(len(data.windows)) < fraction)
    return data.windows[keep]


def _collate(data: _Sequences, rows: np.ndarray) -> tuple[torch.Tensor, ...]:
    """Right-padded (items, types, gaps, targets), each (B, T)."""
    width = int((rows[:, 2] - rows[:, 1]).max()) - 1
    shape = (len(rows), width)
    x, ty, ga, y = (np.zeros(shape, dtype=np.int64) for _ in range(4))
    for b, (u, s, e) in enumerate(rows):
        n = e - s - 1
        x[b, :n] = data.items[u][s : e - 1]
        ty[b, :n] = data.types[u][s : e - 1]
        ga[b, :n] = data.gaps[u][s : e - 1]
        y[b, :n] = data.items[u][s + 1 : e]
    return tuple(torch.from_numpy(a) for a in (x, ty, ga, y))


def _history_batch(data: _Sequences, users: np.ndarray, max_len: int) -> tuple[torch.Tensor, ...]:
    """Right-padded last ``max_len`` items of each user's training sequence, plus lengths."""
    lengths = np.array([min(len(data.items[u]), max_len) for u in users], dtype=np.int64)
    shape = (len(users), max(1, int(lengths.max(initial=0))))
    x, ty, ga = (np.zeros(shape, dtype=np.int64) for _ in range(3))
    for b, (u, n) in enumerate(zip(users, lengths, strict=True)):
        if n:
            x[b, :n] = data.items[u][-n:]
            ty[b, :n] = data.types[u][-n:]
            ga[b, :n] = data.gaps[u][-n:]
    return tuple(torch.from_numpy(a) for a in (x, ty, ga, lengths))


@torch.no_grad()
def evaluate_next_item(
    model: nn.Module, data: _Sequences, *, device: torch.device, autocast: bool, batch: int = 1024
) -> dict[str, float]:
    """HR/NDCG/MRR@10 of the held-out last item, ranked against the full catalogue."""
    if not len(data.val_users):
        return {f"hr@{VAL_K}": 0.0, f"ndcg@{VAL_K}": 0.0, f"mrr@{VAL_K}": 0.0}
    was_training = model.training
    model.eval()
    ranks = []
    for i in range(0, len(data.val_users), batch):
        users = data.val_users[i : i + batch]
        x, ty, ga, lengths = (t.to(device) for t in _history_batch(data, users, model.cfg.max_len))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            scores = model.next_item_scores(x, ty, ga, lengths).float().cpu().numpy()  # (B, V)
        ranks.append(rank_of_targets(scores, data.val_targets[i : i + batch]))
    model.train(was_training)
    return metrics_from_ranks(np.concatenate(ranks), k=VAL_K)


# ---------------------------------------------------------------------------------------------
# warm start


def grow_model(
    init_from: Path,
    vocab: ItemVocab,
    *,
    item_text: Mapping[str, str] | None = None,
    text_cache_dir: Path | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """The champion in ``init_from`` with its item table grown to ``vocab`` (old rows copied exactly).

    New rows come from the item texts projected into the embedding space (a ridge fit on the old
    items' text vectors), or small random vectors without text.
    """
    old, sidecar, old_vocab = load_network(init_from, device="cpu")
    n_old = len(old_vocab)
    if vocab.item_ids[: n_old - 1] != old_vocab.item_ids:
        raise TrainError(
            f"the vocabulary does not extend the one of {init_from}: build it with "
            "ItemVocab(champion item_ids) and extend() so old indices keep their meaning"
        )
    model = build_model(sidecar["kind"], old.cfg, len(vocab))
    state = old.state_dict()
    new_state = model.state_dict()
    for name, tensor in state.items():
        if new_state[name].shape == tensor.shape:
            new_state[name] = tensor.clone()
        else:  # the item table (and popularity): copy the old rows, keep fresh rows for new items
            rows = new_state[name].clone()
            rows[:n_old] = tensor
            new_state[name] = rows
    model.load_state_dict(new_state)
    added = vocab.item_ids[n_old - 1 :]
    if added and item_text and old.cfg.use_item_text:
        vectors = _text_rows(vocab, item_text, old.cfg.text_encoder, text_cache_dir)
        if vectors is not None:
            from recsys_tasks.modeling.text import fit_text_projection

            have, vecs = vectors
            old_rows = have[have < n_old]
            new_rows = have[have >= n_old]
            emb = model.item_emb.weight.detach()
            if len(old_rows) >= 2 and len(new_rows):
                w = fit_text_projection(vecs[have < n_old], emb[old_rows].numpy())
                with torch.no_grad():
                    emb[new_rows] = torch.from_numpy(vecs[have >= n_old] @ w)
    log.info("warm start from %s: %d old items, %d new", init_from, n_old - 1, len(added))
    return model, sidecar


def _text_rows(
    vocab: ItemVocab, item_text: Mapping[str, str], encoder: str, cache_dir: Path | None
) -> tuple[np.ndarray, np.ndarray] | None:
    """(indices, text vectors) for the vocabulary items that have a text."""
    from recsys_tasks.modeling.text import encode_item_texts

    texts = {i + 1: item_text[item] for i, item in enumerate(vocab.item_ids) if item in item_text}
    if not texts:
        return None
    encoded = encode_item_texts(texts, encoder=encoder, cache_dir=cache_dir)
    rows = np.fromiter(encoded.keys(), dtype=np.int64)
    return rows, np.stack([encoded[r] for r in rows])


def _init_from_text(
    model: nn.Module, vocab: ItemVocab, item_text: Mapping[str, str], cache_dir: Path | None
) -> None:
    """Fresh item rows from the principal components of their text vectors (scaled like random init)."""
    from recsys_tasks.modeling.text import pca_projection

    found = _text_rows(vocab, item_text, model.cfg.text_encoder, cache_dir)
    if found is None:
        return
    rows, vecs = found
    with torch.no_grad():
        fresh = torch.from_numpy(pca_projection(vecs, model.cfg.hidden_size))
        model.item_emb.weight[torch.from_numpy(rows)] = fresh


# ---------------------------------------------------------------------------------------------
# checkpoints


def _fingerprint(
    kind: str, model_cfg: ModelConfig, train_cfg: TrainConfig, vocab: ItemVocab, n_seqs: int
) -> str:
    blob = json.dumps([kind, to_dict(model_cfg), to_dict(train_cfg), vocab.item_ids, n_seqs], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    sd = opt.state_dict()
    tensors = {
        f"state.{idx}.{name}": torch.as_tensor(value).detach().cpu().contiguous()
        for idx, slot in sd["state"].items()
        for name, value in slot.items()
    }
    return tensors, sd["param_groups"]


def _load_optimizer(
    opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: list[dict[str, Any]]
) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        _, idx, name = key.split(".", 2)
        state.setdefault(int(idx), {})[name] = value
    opt.load_state_dict({"state": state, "param_groups": groups})


def _save_checkpoint(
    ckpt: Path,
    model: nn.Module,
    best_state: dict[str, torch.Tensor],
    opt: torch.optim.Optimizer,
    state: dict[str, Any],
) -> None:
    tmp = ckpt.with_name(ckpt.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(weights, str(tmp / "model.safetensors"))
    save_file(best_state, str(tmp / "best.safetensors"))
    tensors, groups = _optimizer_tensors(opt)
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    (tmp / "state.json").write_text(json.dumps({**state, "param_groups": groups}, indent=1), encoding="utf-8")
    # swap in the complete directory: a kill leaves either the old or the new checkpoint
    old = ckpt.with_name(ckpt.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if ckpt.exists():
        ckpt.rename(old)
    tmp.rename(ckpt)
    shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# the loop


def _lr_at(step: int, total: int, cfg: TrainConfig, time_fraction: float = 0.0) -> float:
    """Linear warmup, then cosine decay to 0 over the run.

    Progress is the larger of the step fraction and the fraction of ``max_train_seconds`` used, so a
    time-capped run still anneals fully instead of stopping at a high learning rate.
    """
    warmup = max(1, int(cfg.warmup_fraction * total))
    if step < warmup:
        return cfg.learning_rate * (step + 1) / warmup
    progress = min(1.0, max((step - warmup) / max(1, total - warmup), time_fraction))
    return cfg.learning_rate * 0.5 * (1.0 + math.cos(math.pi * progress))


def _make_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    # nanoGPT's rule: decay matrices (and embeddings), not biases and norms.
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.learning_rate, betas=(0.9, 0.98), fused=device.type == "cuda")


def _run_epoch(
    *,
    model: nn.Module,
    forward: nn.Module,
    opt: torch.optim.Optimizer,
    data: _Sequences,
    order: np.ndarray,
    step: int,
    total_steps: int,
    train_cfg: TrainConfig,
    device: torch.device,
    autocast: bool,
    deadline: float | None,
    budget: float | None,
    epoch: int,
) -> tuple[float, int, int, float]:
    """One pass over ``order``; returns (mean loss, new step, sequences seen, seconds)."""
    model.train()
    start = last_log = time.monotonic()
    total_loss, batches, seen = 0.0, 0, 0
    for i in range(0, len(order), train_cfg.batch_size):
        rows = data.windows[order[i : i + train_cfg.batch_size]]
        x, ty, ga, y = (t.to(device, non_blocking=True) for t in _collate(data, rows))
        time_fraction = 0.0
        if budget is not None:
            time_fraction = 1.0 - (deadline - time.monotonic()) / budget
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, total_steps, train_cfg, time_fraction)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            _, loss = forward(x, ty, ga, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if train_cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), train_cfg.grad_clip)
        opt.step()
        step += 1
        batches += 1
        seen += len(rows)
        total_loss += float(loss.detach())
        now = time.monotonic()
        if now - last_log >= train_cfg.log_every_seconds:
            last_log = now
            log.info(
                "epoch %d step %d/%d loss %.4f %.0f seqs/s",
                epoch + 1, step, total_steps, total_loss / batches, seen / (now - start),
            )
        if deadline is not None and now >= deadline:
            log.warning("max_train_seconds reached in epoch %d at step %d; stopping", epoch + 1, step)
            break
    return total_loss / max(1, batches), step, seen, time.monotonic() - start


def _set_seed(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


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
) -> TrainResult:
    """Train a ``kind`` ("transformer" or "gru") model on ``train`` and write it to ``out_dir``.

    With ``init_from`` (the champion's model directory) the champion is grown to ``vocab`` and
    fine-tuned for ``train_cfg.fine_tune_epochs`` (all ``epochs`` with ``full_retrain``) using the
    champion's model config. ``text_cache_dir`` defaults to ``out_dir.parent / "text_cache"``.
    """
    if kind not in ("transformer", "gru"):
        raise TrainError(
            f"kind={kind!r}: train_model trains 'transformer' or 'gru'; use save_popularity for popularity"
        )
    if len(vocab) < 2:
        raise TrainError("the vocabulary is empty: nothing to recommend; check the extracted interval")
    out_dir = Path(out_dir)
    text_cache_dir = text_cache_dir if text_cache_dir is not None else out_dir.parent / "text_cache"
    t0 = time.monotonic()

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = resolve_device(train_cfg.device)
    if world > 1:
        import torch.distributed as dist

        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    autocast = device.type == "cuda" and train_cfg.precision in ("auto", "bf16")
    if train_cfg.precision == "bf16" and device.type != "cuda":
        log.warning("precision=bf16 is only used on CUDA; training in fp32 on %s", device)

    _set_seed(train_cfg.seed)
    parent = None
    if init_from is not None:
        model, champion = grow_model(
            Path(init_from), vocab, item_text=item_text, text_cache_dir=text_cache_dir
        )
        kind, model_cfg, parent = champion["kind"], model.cfg, champion.get("model_version") or str(init_from)
        epochs = train_cfg.epochs if train_cfg.full_retrain else train_cfg.fine_tune_epochs
    else:
        model = build_model(kind, model_cfg, len(vocab))
        if item_text and model_cfg.use_item_text and kind == "transformer":
            _init_from_text(model, vocab, item_text, text_cache_dir)
        epochs = train_cfg.epochs
    model.set_popularity(popularity_counts(train, len(vocab)))
    model.to(device)

    data = _prepare(train, model_cfg, train_cfg.seed)
    if init_from is not None and train_cfg.replay_fraction < 1.0:
        data.windows = replay_windows(data, train_cfg.replay_fraction, seed=train_cfg.seed)
    if not len(data.windows):
        raise TrainError("no user has two or more interactions: nothing to learn; widen the history window")
    per_rank = len(data.windows) // world if world > 1 else len(data.windows)
    steps_per_epoch = math.ceil(per_rank / train_cfg.batch_size)
    total_steps = epochs * steps_per_epoch
    opt = _make_optimizer(model, train_cfg, device)

    forward: nn.Module = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        forward = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if train_cfg.compile:
        forward = torch.compile(forward)

    # resume
    ckpt = out_dir / CHECKPOINT_DIR
    fingerprint = _fingerprint(kind, model_cfg, train_cfg, vocab, len(train)) + str(init_from)
    start_epoch, step, history, elapsed = 0, 0, [], 0.0
    best_metric, bad_epochs = -1.0, 0
    best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    if (ckpt / "state.json").is_file():
        state = json.loads((ckpt / "state.json").read_text(encoding="utf-8"))
        if state.get("fingerprint") == fingerprint:
            model.load_state_dict(load_file(str(ckpt / "model.safetensors")))
            best_state = load_file(str(ckpt / "best.safetensors"))
            opt_tensors = load_file(str(ckpt / "optimizer.safetensors"), device=str(device))
            _load_optimizer(opt, opt_tensors, state["param_groups"])
            start_epoch, step, history = state["epoch"], state["step"], state["history"]
            best_metric, bad_epochs, elapsed = state["best_metric"], state["bad_epochs"], state["seconds"]
            log.info("resuming from %s after epoch %d (step %d)", ckpt, start_epoch, step)
        else:
            log.warning("ignoring checkpoint %s: it was written for other data or configs", ckpt)

    log.info(
        "training %s: %d sequences, %d windows, %d items, %d epochs x %d steps on %s%s",
        kind, len(train), len(data.windows), len(vocab) - 1, epochs, steps_per_epoch, device,
        f" (world {world})" if world > 1 else "",
    )
    deadline = None if train_cfg.max_train_seconds is None else t0 + train_cfg.max_train_seconds - elapsed
    train_seconds, seen_total = 0.0, 0
    stopped = bad_epochs >= train_cfg.patience or start_epoch >= epochs
    for epoch in range(start_epoch, epochs if not stopped else start_epoch):
        _set_seed(train_cfg.seed + epoch + 1)
        order = np.random.default_rng(train_cfg.seed + epoch).permutation(len(data.windows))
        if world > 1:
            order = order[rank::world][:per_rank]
        loss, step, seen, seconds = _run_epoch(
            model=model, forward=forward, opt=opt, data=data, order=order, step=step, total_steps=total_steps,
            train_cfg=train_cfg, device=device, autocast=autocast, deadline=deadline,
            budget=train_cfg.max_train_seconds, epoch=epoch,
        )
        train_seconds += seconds
        seen_total += seen
        val = evaluate_next_item(model, data, device=device, autocast=autocast)
        speed = seen / max(seconds, 1e-9)
        history.append({"epoch": epoch + 1, "loss": loss, "seconds": seconds, "seqs_per_s": speed, **val})
        log.info(
            "epoch %d/%d loss %.4f val hr@10 %.4f ndcg@10 %.4f (%.1fs, %.0f seqs/s)",
            epoch + 1, epochs, loss, val["hr@10"], val["ndcg@10"], seconds, seen / max(seconds, 1e-9),
        )
        if val[f"ndcg@{VAL_K}"] > best_metric:
            best_metric, bad_epochs = val[f"ndcg@{VAL_K}"], 0
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        else:
            bad_epochs += 1
        out_of_time = deadline is not None and time.monotonic() >= deadline
        if rank == 0:
            _save_checkpoint(
                ckpt, model, best_state, opt,
                {
                    "fingerprint": fingerprint, "epoch": epoch + 1, "step": step, "history": history,
                    "best_metric": best_metric, "bad_epochs": bad_epochs,
                    "seconds": elapsed + time.monotonic() - t0,
                },
            )
        stop = bad_epochs >= train_cfg.patience or out_of_time
        if world > 1:
            # Every rank must leave the loop together, or the others hang in DDP's next all-reduce.
            flag = torch.tensor([float(stop)], device=device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            stop = bool(flag.item())
        if stop:
            if bad_epochs >= train_cfg.patience:
                log.info("early stopping after epoch %d: val ndcg@10 flat for %d epochs", epoch + 1, bad_epochs)
            break

    model.load_state_dict(best_state)
    best = max(history, key=lambda h: h[f"ndcg@{VAL_K}"]) if history else {}
    metrics = {k: float(best[k]) for k in (f"hr@{VAL_K}", f"ndcg@{VAL_K}", f"mrr@{VAL_K}") if k in best}
    seconds = elapsed + time.monotonic() - t0
    result = TrainResult(
        model_dir=out_dir,
        metrics=metrics,
        history=history,
        epochs=len(history),
        steps=step,
        seconds=seconds,
        seqs_per_s=seen_total / train_seconds if train_seconds else 0.0,
    )
    if rank == 0:
        save_model(
            out_dir,
            kind=kind,
            vocab=vocab,
            popularity=model.popularity.cpu().numpy(),
            model=model,
            model_cfg=model_cfg,
            extra={
                "epoch": int(best.get("epoch", 0)),
                "step": step,
                "metrics": metrics,
                "parent": parent,
                "train_config": to_dict(train_cfg),
                "history": history,
                "seconds": seconds,
            },
        )
        shutil.rmtree(ckpt, ignore_errors=True)
    log.info("wrote %s: val %s after %d epochs, %.1fs", out_dir, metrics, len(history), seconds)
    return result


__all__ = ["TrainError", "TrainResult", "evaluate_next_item", "grow_model", "train_model", "training_windows"]
