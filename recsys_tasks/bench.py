"""Offline benchmark on a public dataset with the standard leave-one-out protocol.

    python -m recsys_tasks.bench --data ml-100k.inter --format recbole --model transformer

Per user (with at least 3 interactions) the last item is the test target, the second-to-last the
validation target (early stopping), and the rest is training data. Test ranking is against the full
catalogue, history items included (not excluded); "sampled" metrics rank the target against 100
uniformly drawn items the user never interacted with. Progress goes to stderr; the last stdout line
is one JSON object with the figures.

Item text (issue 15) comes from ``--items`` (a RecBole ``.item`` file; by default the one next to
``--data``, e.g. ``ml-100k.item``, see ``recsys_tasks.bench_data``). With text (``--item-text``, the
default where there is text; the report's ``item_text`` says which) the id model (``transformer``;
``gru`` ignores text) starts its item rows from the text vectors, and ``--model pretrained`` trains a
pretrained text backbone (``--backbone``) with LoRA adapters.
``--data synthetic:shop`` benchmarks on a generated shop whose late-launched items occur only as test
targets (``recsys_tasks.data.synth.new_items``). Every report has ``new_items``: the test figures of
the users whose target occurs nowhere in the training input (``{"users": 0, ...: null}`` where none
do), and the cost: ``seconds_per_epoch`` (mean time of an epoch's training steps, validation and
setup left out), ``trainable_params`` (parameters with ``requires_grad`` in the saved model as loaded;
``total_params`` counts all) and ``artifact_mb`` (the model directory on disk, MiB).

``--test-every-epoch`` also ranks the test targets after every epoch (with the weights of that epoch,
not the best-validation ones) and adds ``test_curve``: ``[{epoch, wall_time_s, ndcg@10, hr@10}]``,
where ``wall_time_s`` counts from process start and leaves out the time spent in these extra test
evaluations (it is the time a run without the flag would have taken to get there). ``--target-ndcg X``
(implies the flag) adds ``time_to_ndcg`` (and ``epochs_to_ndcg``): the first such wall time at which
test NDCG@10 >= X, or null. The final ``wall_time_s`` then includes the extra evaluations.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from recsys_tasks.bench_data import (
    BenchDataError,
    item_file_for,
    read_interactions,
    read_item_texts,
    to_sequences,
)
from recsys_tasks.config import ModelConfig, TrainConfig
from recsys_tasks.data.sequences import ItemVocab, SequenceData
from recsys_tasks.data.synth.new_items import new_items_shop
from recsys_tasks.modeling import training as train_module
from recsys_tasks.modeling.full_ranking import leave_one_out_metrics
from recsys_tasks.modeling.hardware import apply_threads
from recsys_tasks.modeling.text import DEFAULT_ENCODER
from recsys_tasks.modeling.training import train_model
from recsys_tasks.serving.recommender import PopularityRecommender, Recommender, load_recommender

log = logging.getLogger("recsys_tasks.bench")

K = 10
NUM_SAMPLED_NEGATIVES = 100
SYNTHETIC_SHOP = "synthetic:shop"


def _truncate(data: SequenceData, drop: int) -> SequenceData:
    return SequenceData(
        list(data.user_ids),
        [s[: len(s) - drop] for s in data.items],
        [s[: len(s) - drop] for s in data.event_types],
        [s[: len(s) - drop] for s in data.timestamps],
    )


def evaluate(
    recommender: Recommender, full: SequenceData, users: np.ndarray, *, seed: int, batch: int = 2048,
    bf16: bool = False,
) -> dict[str, float]:
    """Full-catalogue and sampled HR/NDCG/MRR@10 (and coverage@10) of each user's last item given the rest."""
    history = _truncate(full.subset(users), 1)
    targets = np.array([full.items[u][-1] for u in users], dtype=np.int64)

    def score_users(positions: np.ndarray) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return recommender.scores(history.subset(positions))  # (B, V)

    return leave_one_out_metrics(
        score_users, [full.items[u] for u in users], targets, num_items=len(recommender.vocab), k=K,
        num_sampled=NUM_SAMPLED_NEGATIVES, seed=seed, chunk=batch,
    )


def _parser() -> argparse.ArgumentParser:
    d_model, d_train = ModelConfig(), TrainConfig()
    p = argparse.ArgumentParser(prog="python -m recsys_tasks.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help=f"an interactions file, or {SYNTHETIC_SHOP}")
    p.add_argument("--format", choices=("recbole", "sasrec"), default="recbole")
    p.add_argument("--items", type=Path, default=None,
                   help="a RecBole .item file with item text (default: the .item file next to --data)")
    p.add_argument("--item-text", action=argparse.BooleanOptionalAction, default=None,
                   help="start item rows from item text (default: on where there is item text)")
    p.add_argument("--text-cache", type=Path, default=None,
                   help="where encoded item texts are cached (default: next to the model directory)")
    p.add_argument("--shop-users", type=int, default=3_000, help=f"users of {SYNTHETIC_SHOP}")
    p.add_argument("--shop-items", type=int, default=1_500, help=f"catalogue size of {SYNTHETIC_SHOP}")
    p.add_argument("--shop-seed", type=int, default=0, help=f"the seed {SYNTHETIC_SHOP} is generated with")
    p.add_argument("--model", choices=("transformer", "gru", "pretrained", "popularity"),
                   default="transformer")
    p.add_argument("--backbone", default=None,
                   help=f"--model pretrained: {DEFAULT_ENCODER} (the default) or a local model folder")
    p.add_argument("--backbone-layers", type=int, default=None, help="keep the backbone's first N layers")
    p.add_argument("--lora-rank", type=int, default=None, help="default: the model config's")
    p.add_argument("--lora-alpha", type=float, default=None, help="default: the model config's")
    p.add_argument("--id-embedding", action=argparse.BooleanOptionalAction, default=None,
                   help="--model pretrained: add a learned id row to each item's text vector (default: the "
                   "model config's)")
    p.add_argument("--architecture", choices=("gpt2", "llama"), default=d_model.architecture)
    p.add_argument("--epochs", type=int, default=d_train.epochs)
    p.add_argument("--seed", type=int, default=d_train.seed)
    p.add_argument("--max-len", type=int, default=d_model.max_len)
    p.add_argument("--hidden", type=int, default=d_model.hidden_size)
    p.add_argument("--layers", type=int, default=d_model.num_layers)
    p.add_argument("--heads", type=int, default=d_model.num_heads)
    p.add_argument("--dropout", type=float, default=d_model.dropout)
    p.add_argument("--lr", type=float, default=d_train.learning_rate)
    p.add_argument("--batch-size", type=int, default=d_train.batch_size)
    p.add_argument("--weight-decay", type=float, default=d_train.weight_decay)
    p.add_argument("--patience", type=int, default=d_train.patience)
    p.add_argument("--time-gaps", action=argparse.BooleanOptionalAction, default=d_model.use_time_gaps)
    p.add_argument("--repeat-bias", action=argparse.BooleanOptionalAction, default=d_model.repeat_bias)
    p.add_argument("--max-train-seconds", type=float, default=None)
    p.add_argument("--threads", type=int, default=None, help="default: the CPUs this process may use")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default=d_train.precision)
    p.add_argument("--loss", choices=("auto", "full", "sampled"), default=d_model.loss)
    p.add_argument("--num-negatives", type=int, default=d_model.num_negatives)
    p.add_argument("--device", default="auto")
    p.add_argument("--out-dir", type=Path, default=None, help="where the model goes (default: a temp dir)")
    p.add_argument("--test-every-epoch", action="store_true",
                   help="also evaluate the test split after every epoch and report test_curve")
    p.add_argument("--target-ndcg", type=float, default=None,
                   help="report time_to_ndcg: first wall time with test NDCG@10 >= this "
                   "(implies --test-every-epoch)")
    return p


class _TestCurve:
    """Wraps ``training.evaluate_next_item`` (called once per epoch) to also rank the test targets."""

    def __init__(self, *, kind: str, vocab: ItemVocab, full: SequenceData, users: np.ndarray, seed: int,
                 t0: float) -> None:
        self.kind, self.vocab, self.full, self.users, self.seed, self.t0 = kind, vocab, full, users, seed, t0
        self.points: list[dict[str, float]] = []
        self.eval_seconds = 0.0
        self._original = train_module.evaluate_next_item

    def __call__(self, model: torch.nn.Module, data: object, **kwargs: object) -> dict[str, float]:
        val = self._original(model, data, **kwargs)
        start = time.monotonic()
        wall = start - self.t0 - self.eval_seconds  # as if the extra test evaluations had not run
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        rec = Recommender(kind=self.kind, vocab=self.vocab, popularity=model.popularity.cpu().numpy(),
                          model=model, device=device)
        metrics = evaluate(rec, self.full, self.users, seed=self.seed)
        model.train(was_training)
        self.eval_seconds += time.monotonic() - start
        self.points.append({
            "epoch": len(self.points) + 1, "wall_time_s": round(wall, 2),
            f"ndcg@{K}": round(metrics[f"ndcg@{K}"], 5), f"hr@{K}": round(metrics[f"hr@{K}"], 5),
        })
        log.info("epoch %d test ndcg@%d %.4f hr@%d %.4f at %.1fs", len(self.points), K, metrics[f"ndcg@{K}"],
                 K, metrics[f"hr@{K}"], wall)
        return val

    @contextlib.contextmanager
    def installed(self):  # type: ignore[no-untyped-def]
        train_module.evaluate_next_item = self  # train_model looks the name up at call time
        try:
            yield self
        finally:
            train_module.evaluate_next_item = self._original

    def report(self, target: float | None) -> dict[str, object]:
        out: dict[str, object] = {"test_curve": self.points, "test_eval_seconds": round(self.eval_seconds, 2)}
        if target is not None:
            hit = next((p for p in self.points if p[f"ndcg@{K}"] >= target), None)
            out.update({"target_ndcg": target, "time_to_ndcg": hit["wall_time_s"] if hit else None,
                        "epochs_to_ndcg": hit["epoch"] if hit else None})
        return out


def new_item_users(train: SequenceData, full: SequenceData, users: np.ndarray) -> np.ndarray:
    """The ``users`` whose test target (last item of ``full``) occurs in no sequence of ``train``."""
    seen = np.concatenate([np.zeros(0, dtype=np.int64), *train.items])
    targets = np.array([full.items[u][-1] for u in users], dtype=np.int64)
    return np.asarray(users)[~np.isin(targets, seen)]


def _read_data(args: argparse.Namespace) -> tuple[pd.DataFrame, dict[str, str] | None]:
    """The interactions and the item texts (None where there are none) that ``args`` point at."""
    if args.data == SYNTHETIC_SHOP:
        if args.items is not None:
            raise BenchDataError(f"--items does not apply to {SYNTHETIC_SHOP}: it brings its own item text")
        shop = new_items_shop(n_users=args.shop_users, n_items=args.shop_items, seed=args.shop_seed)
        return shop.interactions, shop.item_text
    frame = read_interactions(Path(args.data), args.format)
    items = args.items if args.items is not None else item_file_for(Path(args.data))
    return frame, read_item_texts(items) if items is not None else None


def _model_config(args: argparse.Namespace, *, use_text: bool) -> ModelConfig:
    """The model config of the command line; a pretrained backbone only with ``--model pretrained``."""
    fields: dict[str, object] = dict(
        architecture=args.architecture, hidden_size=args.hidden, num_layers=args.layers, num_heads=args.heads,
        max_len=args.max_len, dropout=args.dropout, use_time_gaps=args.time_gaps, use_item_text=use_text,
        repeat_bias=args.repeat_bias, loss=args.loss, num_negatives=args.num_negatives,
    )
    if args.model == "pretrained":
        fields.update(backbone=args.backbone or DEFAULT_ENCODER, backbone_layers=args.backbone_layers)
        for name in ("lora_rank", "lora_alpha", "id_embedding"):  # unset: the model config's default
            if getattr(args, name) is not None:
                fields[name] = getattr(args, name)
    return ModelConfig(**fields)


def _check_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exit with a usage error where options contradict the model."""
    pretrained_only = ("backbone", "backbone_layers", "lora_rank", "lora_alpha", "id_embedding")
    if args.model != "pretrained" and any(getattr(args, name) is not None for name in pretrained_only):
        p.error("--backbone, --backbone-layers, --lora-rank, --lora-alpha and --[no-]id-embedding need "
                "--model pretrained")
    if args.model == "pretrained" and args.backbone == "id":
        p.error("--model pretrained needs a pretrained --backbone; the id model is --model transformer")


def _footprint(recommender: Recommender, out_dir: Path) -> dict[str, object]:
    """Parameters (trainable and all) of the loaded model and the size of its directory on disk."""
    params = list(recommender.model.parameters()) if recommender.model is not None else []
    files = [f for f in out_dir.rglob("*") if f.is_file()] if out_dir.is_dir() else []
    return {
        "trainable_params": sum(p.numel() for p in params if p.requires_grad),
        "total_params": sum(p.numel() for p in params),
        "artifact_mb": round(sum(f.stat().st_size for f in files) / 2**20, 3) if files else None,
    }


def _segment(
    recommender: Recommender, full: SequenceData, users: np.ndarray, *, seed: int
) -> dict[str, object]:
    """NDCG and HR@10 of ``users`` alone (nulls where there are none)."""
    metrics = evaluate(recommender, full, users, seed=seed) if len(users) else {}
    keys = (f"ndcg@{K}", f"hr@{K}")
    return {"users": len(users), **{key: round(metrics[key], 5) if metrics else None for key in keys}}


def _fit(
    args: argparse.Namespace, train: SequenceData, vocab: ItemVocab, *, texts: dict[str, str] | None,
    model_cfg: ModelConfig, out_dir: Path, curve: _TestCurve | None,
) -> tuple[Recommender, dict[str, object]]:
    """The trained (for popularity: counted) model, and what its training took."""
    if args.model == "popularity":
        return PopularityRecommender.fit(train, vocab), {"epochs": 0, "train_seqs_per_s": 0.0}
    train_cfg = TrainConfig(
        epochs=args.epochs, seed=args.seed, learning_rate=args.lr, batch_size=args.batch_size,
        weight_decay=args.weight_decay, patience=args.patience, max_train_seconds=args.max_train_seconds,
        device=args.device, precision=args.precision, num_threads=args.threads,
    )
    with curve.installed() if curve is not None else contextlib.nullcontext():
        result = train_model(
            train=train, vocab=vocab, model_cfg=model_cfg, train_cfg=train_cfg, out_dir=out_dir,
            item_text=texts if model_cfg.use_item_text else None, kind=args.model,
            text_cache_dir=args.text_cache,
        )
    recommender = load_recommender(out_dir, device=args.device)
    epoch_seconds = [h["seconds"] for h in result.history]  # the training steps, validation left out
    return recommender, {
        "epochs": result.epochs,
        "train_seqs_per_s": round(result.seqs_per_s, 1),
        "val_ndcg@10": result.metrics.get("ndcg@10"),
        "train_seconds": result.seconds,
        "seconds_per_epoch": round(float(np.mean(epoch_seconds)), 3) if epoch_seconds else None,
        **_footprint(recommender, out_dir),
    }


def main(argv: list[str] | None = None) -> int:
    p = _parser()
    args = p.parse_args(argv)
    _check_args(p, args)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    args.threads = apply_threads(args.threads, what="bench")
    t0 = time.monotonic()
    frame, texts = _read_data(args)
    if args.item_text and not texts:
        raise BenchDataError(f"--item-text: {args.data} has no item text; pass --items FILE.item")
    use_text = bool(texts) if args.item_text is None else args.item_text
    full, vocab = to_sequences(frame)
    lengths = np.array([len(s) for s in full.items])
    test_users = np.flatnonzero(lengths >= 3)
    train = _truncate(full, 1)  # train_model holds out the (now) last item for validation
    new_users = new_item_users(train, full, test_users)
    log.info(
        "%d users, %d items (%d with text), %d interactions, %d test users (%d with a new item)",
        len(full), len(vocab) - 1, len(texts or {}), lengths.sum(), len(test_users), len(new_users),
    )
    model_cfg = _model_config(args, use_text=use_text)
    torch.manual_seed(args.seed)
    curve = None
    if (args.test_every_epoch or args.target_ndcg is not None) and args.model != "popularity":
        curve = _TestCurve(kind=args.model, vocab=vocab, full=full, users=test_users, seed=args.seed, t0=t0)
    with tempfile.TemporaryDirectory(prefix="recsys-bench-") as tmp:
        out_dir = args.out_dir or Path(tmp) / "model"
        recommender, training = _fit(
            args, train, vocab, texts=texts, model_cfg=model_cfg, out_dir=out_dir, curve=curve
        )
        metrics = evaluate(recommender, full, test_users, seed=args.seed)
        new_items = _segment(recommender, full, new_users, seed=args.seed)
    report = {
        **{k: round(v, 5) for k, v in metrics.items()},
        "new_items": new_items,
        "wall_time_s": round(time.monotonic() - t0, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "seed": args.seed,
        "model": args.model,
        "item_text": use_text,
        "users": len(test_users),
        "items": len(vocab) - 1,
        "threads": args.threads,
        "config": {"model": model_cfg.model_dump() if args.model != "popularity" else None, "lr": args.lr,
                   "batch_size": args.batch_size, "max_epochs": args.epochs, "patience": args.patience},
        **training,
        **(curve.report(args.target_ndcg) if curve is not None else {}),
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
