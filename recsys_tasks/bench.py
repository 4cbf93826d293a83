"""Offline benchmark on a public dataset with the standard leave-one-out protocol.

    python -m recsys_tasks.bench --data ml-100k.inter --format recbole --model transformer

Per user (with at least 3 interactions) the last item is the test target, the second-to-last the
validation target (early stopping), and the rest is training data. Test ranking is against the full
catalogue, history items included (not excluded); "sampled" metrics rank the target against 100
uniformly drawn items the user never interacted with. Progress goes to stderr; the last stdout line
is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from recsys_tasks.config import EVENT_TYPES, ModelConfig, TrainConfig
from recsys_tasks.data import EVENT_TYPE_IDS, ItemVocab, SequenceData
from recsys_tasks.metrics import metrics_from_ranks, rank_of_targets

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
            raise BenchDataError(f"{path}: a RecBole .inter header needs user_id:token and item_id:token columns")
        ts = frame["timestamp"].astype(float).astype(np.int64) if "timestamp" in frame else np.arange(len(frame))
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


def evaluate(recommender, full: SequenceData, users: np.ndarray, *, seed: int, batch: int = 512) -> dict[str, float]:
    """Full-catalogue and sampled HR/NDCG/MRR@10 of each user's last item given the rest."""
    history = _truncate(full.subset(users), 1)
    targets = np.array([full.items[u][-1] for u in users], dtype=np.int64)
    num_items = len(recommender.vocab)
    rng = np.random.default_rng(seed)
    full_ranks, sampled_ranks = [], []
    for i in range(0, len(users), batch):
        scores = recommender.scores(history.subset(range(i, min(i + batch, len(users))))).float().cpu().numpy()
        t = targets[i : i + batch]
        full_ranks.append(rank_of_targets(scores, t))
        for b, u in enumerate(users[i : i + batch]):
            seen = set(full.items[u].tolist())
            negatives: list[int] = []
            while len(negatives) < NUM_SAMPLED_NEGATIVES:
                for c in rng.integers(1, num_items, size=2 * NUM_SAMPLED_NEGATIVES):
                    if int(c) not in seen and len(negatives) < NUM_SAMPLED_NEGATIVES:
                        negatives.append(int(c))
            sampled_ranks.append(1 + int((scores[b, negatives] >= scores[b, t[b]]).sum()))
    out = metrics_from_ranks(np.concatenate(full_ranks), k=K)
    sampled = metrics_from_ranks(np.asarray(sampled_ranks), k=K)
    out.update({f"sampled_{k}": v for k, v in sampled.items()})
    return out


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
    p.add_argument("--max-train-seconds", type=float, default=None)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--device", default="auto")
    p.add_argument("--out-dir", type=Path, default=None, help="where the model is written (default: a temp dir)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)
    t0 = time.monotonic()
    from recsys_tasks.recommender import PopularityRecommender, load_recommender
    from recsys_tasks.train import train_model

    full, vocab = to_sequences(read_interactions(args.data, args.format))
    lengths = np.array([len(s) for s in full.items])
    test_users = np.flatnonzero(lengths >= 3)
    train = _truncate(full, 1)  # train_model holds out the (now) last item for validation
    log.info("%d users, %d items, %d interactions, %d test users", len(full), len(vocab) - 1, lengths.sum(), len(test_users))

    model_cfg = replace(
        ModelConfig(),
        architecture=args.architecture, hidden_size=args.hidden, num_layers=args.layers, num_heads=args.heads,
        max_len=args.max_len, dropout=args.dropout, use_time_gaps=args.time_gaps, use_item_text=False,
    )
    train_cfg = replace(
        TrainConfig(),
        epochs=args.epochs, seed=args.seed, learning_rate=args.lr, batch_size=args.batch_size,
        weight_decay=args.weight_decay, patience=args.patience, max_train_seconds=args.max_train_seconds,
        device=args.device,
    )
    torch.manual_seed(args.seed)
    extra: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="recsys-bench-") as tmp:
        out_dir = args.out_dir or Path(tmp) / "model"
        if args.model == "popularity":
            recommender = PopularityRecommender.fit(train, vocab)
            epochs, seqs_per_s = 0, 0.0
        else:
            result = train_model(
                train=train, vocab=vocab, model_cfg=model_cfg, train_cfg=train_cfg, out_dir=out_dir, kind=args.model
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
        "config": {"model": vars(model_cfg) if args.model != "popularity" else None, "lr": args.lr,
                   "batch_size": args.batch_size, "max_epochs": args.epochs, "patience": args.patience},
        **extra,
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
