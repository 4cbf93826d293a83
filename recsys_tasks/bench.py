"""Offline benchmark on a public dataset with the standard leave-one-out protocol.

    python -m recsys_tasks.bench --data ml-100k.inter --format recbole --model transformer

Per user (with at least 3 interactions) the last item is the test target, the second-to-last the
validation target (early stopping), and the rest is training data. Test ranking is against the full
catalogue, history items included (not excluded); "sampled" metrics rank the target against 100
uniformly drawn items the user never interacted with. Progress goes to stderr; the last stdout line
is one JSON object with the figures.

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

from recsys_tasks.config import EVENT_TYPES, ModelConfig, TrainConfig
from recsys_tasks.data.sequences import EVENT_TYPE_IDS, ItemVocab, SequenceData
from recsys_tasks.modeling import training as train_module
from recsys_tasks.modeling.full_ranking import leave_one_out_metrics
from recsys_tasks.modeling.hardware import apply_threads
from recsys_tasks.modeling.training import train_model
from recsys_tasks.serving.recommender import PopularityRecommender, Recommender, load_recommender

log = logging.getLogger("recsys_tasks.bench")

K = 10
NUM_SAMPLED_NEGATIVES = 100


class BenchDataError(ValueError):
    """The benchmark file cannot be read in the given format; the message says what was expected."""


def read_interactions(path: Path, fmt: str) -> pd.DataFrame:
    """A frame with columns user, item (strings) and ts (int), in file order."""
    path = Path(path)
    if not path.is_file():
        raise BenchDataError(f"{path} does not exist; pass --data pointing at a .inter or SASRec .txt file")
    if fmt == "recbole":
        frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
        frame.columns = [c.split(":", 1)[0] for c in frame.columns]
        if not {"user_id", "item_id"} <= set(frame.columns):
            raise BenchDataError(f"{path}: a RecBole .inter header needs user_id:token and item_id:token")
        has_ts = "timestamp" in frame
        ts = frame["timestamp"].astype(float).astype(np.int64) if has_ts else np.arange(len(frame))
        return pd.DataFrame({"user": frame["user_id"], "item": frame["item_id"], "ts": ts})
    if fmt == "sasrec":
        frame = pd.read_csv(path, sep=r"\s+", header=None, names=["user", "item"], dtype=str, usecols=[0, 1])
        return frame.assign(ts=np.arange(len(frame), dtype=np.int64))
    raise BenchDataError(f"--format {fmt!r}: use recbole or sasrec")


def to_sequences(frame: pd.DataFrame) -> tuple[SequenceData, ItemVocab]:
    """Time-ordered per-user sequences (ties keep file order) and the item vocabulary."""
    frame = frame.assign(row=np.arange(len(frame))).sort_values(["user", "ts", "row"], kind="stable")
    vocab = ItemVocab(pd.unique(frame["item"]))
    idx = vocab.encode(frame["item"].to_numpy())
    ts = frame["ts"].to_numpy(dtype=np.int64)
    users = frame["user"].to_numpy()
    bounds = np.flatnonzero(users[1:] != users[:-1]) + 1
    starts, ends = np.concatenate(([0], bounds)), np.concatenate((bounds, [len(users)]))
    rate = EVENT_TYPE_IDS[EVENT_TYPES[-1]]
    data = SequenceData([], [], [], [])
    for s, e in zip(starts, ends, strict=True):
        data.user_ids.append(str(users[s]))
        data.items.append(idx[s:e])
        data.event_types.append(np.full(e - s, rate, dtype=np.int64))
        data.timestamps.append(ts[s:e])
    return data, vocab


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
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--format", choices=("recbole", "sasrec"), default="recbole")
    p.add_argument("--model", choices=("transformer", "gru", "popularity"), default="transformer")
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


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    args.threads = apply_threads(args.threads, what="bench")
    t0 = time.monotonic()
    full, vocab = to_sequences(read_interactions(args.data, args.format))
    lengths = np.array([len(s) for s in full.items])
    test_users = np.flatnonzero(lengths >= 3)
    train = _truncate(full, 1)  # train_model holds out the (now) last item for validation
    log.info(
        "%d users, %d items, %d interactions, %d test users",
        len(full), len(vocab) - 1, lengths.sum(), len(test_users),
    )

    model_cfg = ModelConfig(
        architecture=args.architecture, hidden_size=args.hidden, num_layers=args.layers, num_heads=args.heads,
        max_len=args.max_len, dropout=args.dropout, use_time_gaps=args.time_gaps, use_item_text=False,
        repeat_bias=args.repeat_bias, loss=args.loss, num_negatives=args.num_negatives,
    )
    train_cfg = TrainConfig(
        epochs=args.epochs, seed=args.seed, learning_rate=args.lr, batch_size=args.batch_size,
        weight_decay=args.weight_decay, patience=args.patience, max_train_seconds=args.max_train_seconds,
        device=args.device, precision=args.precision, num_threads=args.threads,
    )
    torch.manual_seed(args.seed)
    extra: dict[str, object] = {}
    curve = None
    if (args.test_every_epoch or args.target_ndcg is not None) and args.model != "popularity":
        curve = _TestCurve(kind=args.model, vocab=vocab, full=full, users=test_users, seed=args.seed, t0=t0)
    with tempfile.TemporaryDirectory(prefix="recsys-bench-") as tmp:
        out_dir = args.out_dir or Path(tmp) / "model"
        if args.model == "popularity":
            recommender = PopularityRecommender.fit(train, vocab)
            epochs, seqs_per_s = 0, 0.0
        else:
            with curve.installed() if curve is not None else contextlib.nullcontext():
                result = train_model(
                    train=train, vocab=vocab, model_cfg=model_cfg, train_cfg=train_cfg, out_dir=out_dir,
                    kind=args.model,
                )
            recommender = load_recommender(out_dir, device=args.device)
            epochs, seqs_per_s = result.epochs, result.seqs_per_s
            extra = {"val_ndcg@10": result.metrics.get("ndcg@10"), "train_seconds": result.seconds}
        metrics = evaluate(recommender, full, test_users, seed=args.seed)
    report = {
        **{k: round(v, 5) for k, v in metrics.items()},
        "epochs": epochs,
        "wall_time_s": round(time.monotonic() - t0, 2),
        "train_seqs_per_s": round(seqs_per_s, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "seed": args.seed,
        "model": args.model,
        "users": len(test_users),
        "items": len(vocab) - 1,
        "threads": args.threads,
        "config": {"model": model_cfg.model_dump() if args.model != "popularity" else None, "lr": args.lr,
                   "batch_size": args.batch_size, "max_epochs": args.epochs, "patience": args.patience},
        **extra,
        **(curve.report(args.target_ndcg) if curve is not None else {}),
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
