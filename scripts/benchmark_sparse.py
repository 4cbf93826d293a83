"""Benchmark (issue 17): time to quality on the synthetic sparse shop, before vs after, in one run.

Not a test. Usage:
    .venv/bin/python scripts/benchmark_sparse.py [--users 30000 --items 25000 --seconds 300 --threads 2]

Phases, all on one generated shop (``recsys_tasks.data.synth.sparse``, leave-one-out as in ``bench``):
1. throughput: training steps of each variant (full/sampled softmax x fp32/bf16) on the same
   batches, alternating variants over ``--reps`` rounds so a shared machine's load hits all alike;
2. time to quality: "before" (full softmax, fp32: the old defaults on this catalogue) and "after"
   (``loss: auto``, ``precision: auto``) each trained in its own subprocess (for its peak RSS) for at
   most ``--epochs`` epochs and ``--seconds`` seconds, then ranked on the test items;
3. evaluation: the old per-user numpy evaluation on ``--old-eval-users`` users (extrapolated) against
   the new chunked torch one on all users, on the same model.
Prints one JSON object per phase.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from recsys_tasks.bench import _truncate, evaluate, to_sequences
from recsys_tasks.config import ModelConfig, TrainConfig
from recsys_tasks.data.synth.sparse import sparse_shop
from recsys_tasks.modeling.losses import choose_loss
from recsys_tasks.modeling.metrics import metrics_from_ranks, rank_of_targets
from recsys_tasks.modeling.model import SeqRecModel
from recsys_tasks.modeling.windows import collate, positions_per_batch, prepare

VARIANTS = {"before": {"loss": "full", "precision": "fp32"}, "after": {"loss": "auto", "precision": "auto"}}


def _data(args: argparse.Namespace):  # -> (full, vocab, train, test_users)
    frame = sparse_shop(n_users=args.users, n_items=args.items, seed=args.seed)
    full, vocab = to_sequences(frame)
    test_users = np.flatnonzero(np.array([len(s) for s in full.items]) >= 3)
    return full, vocab, _truncate(full, 1), test_users


def throughput(args: argparse.Namespace) -> dict:
    """Sequences/s of each loss x precision on the same batches, variants alternating."""
    full, vocab, train, _ = _data(args)
    cfg = ModelConfig(use_item_text=False)
    data = prepare(train, cfg, 0)
    rng = np.random.default_rng(0)
    batches = [collate(data, data.windows[rng.choice(len(data.windows), 128, replace=False)]) for _ in range(args.steps)]
    seqs: dict[str, list[float]] = {}
    for _ in range(args.reps):
        for loss in ("full", "sampled"):
            for bf16 in (False, True):
                torch.manual_seed(0)
                model = SeqRecModel(cfg.model_copy(update={"loss": loss}), len(vocab))
                opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
                start = None
                for i, (x, ty, ga, y) in enumerate(batches):
                    if i == 2:
                        start = time.perf_counter()  # the first two steps warm up
                    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                        _, value = model(x, ty, ga, y)
                    opt.zero_grad()
                    value.backward()
                    opt.step()
                name = f"{loss}/{'bf16' if bf16 else 'fp32'}"
                seqs.setdefault(name, []).append(128 * (len(batches) - 2) / (time.perf_counter() - start))
    base = seqs["full/fp32"]
    return {
        "phase": "throughput", "items": len(vocab) - 1, "windows": len(data.windows),
        "seqs_per_s": {k: [round(v, 1) for v in vals] for k, vals in seqs.items()},
        "ratio_to_full_fp32_median": {k: round(float(np.median(np.array(v) / np.array(base))), 2) for k, v in seqs.items()},
    }


def train_variant(args: argparse.Namespace) -> dict:
    """Train one variant (in this process) and rank the test items; the parent runs it in a subprocess."""
    from recsys_tasks.modeling.training import train_model
    from recsys_tasks.serving.recommender import load_recommender

    full, vocab, train, test_users = _data(args)
    model_cfg = ModelConfig(use_item_text=False, loss=VARIANTS[args.variant]["loss"])
    train_cfg = TrainConfig(
        epochs=args.epochs, patience=args.epochs, max_train_seconds=args.seconds, device="cpu",
        precision=VARIANTS[args.variant]["precision"], num_threads=args.threads,
    )
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        result = train_model(train=train, vocab=vocab, model_cfg=model_cfg, train_cfg=train_cfg, out_dir=Path(tmp) / "m")
        rec = load_recommender(Path(tmp) / "m", device="cpu")
        start = time.monotonic()
        test = evaluate(rec, full, test_users, seed=args.seed)
        eval_s = time.monotonic() - start
        old_eval = _old_evaluate_seconds(rec, full, test_users[: args.old_eval_users], seed=args.seed)
    return {
        "phase": "train", "variant": args.variant, **VARIANTS[args.variant],
        "loss_used": choose_loss(model_cfg, len(vocab), positions=positions_per_batch(prepare(train, model_cfg, 0), 128)),
        "epochs": result.epochs,
        "seqs_per_s": round(result.seqs_per_s, 1), "wall_s": round(time.monotonic() - t0, 1),
        "epoch_s": [round(h["seconds"], 1) for h in result.history],
        "val_ndcg@10": [round(h["ndcg@10"], 5) for h in result.history],
        "test": {k: round(v, 5) for k, v in test.items()}, "eval_users": len(test_users), "eval_s": round(eval_s, 1),
        "old_eval_s_per_user": old_eval / max(1, min(len(test_users), args.old_eval_users)),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def _old_evaluate_seconds(recommender, full, users: np.ndarray, *, seed: int, batch: int = 512) -> float:
    """Seconds of the evaluation ``bench`` ran before issue 17 (numpy, Python work per user)."""
    start = time.monotonic()
    history = _truncate(full.subset(users), 1)
    targets = np.array([full.items[u][-1] for u in users], dtype=np.int64)
    rng, ranks, sampled = np.random.default_rng(seed), [], []
    for i in range(0, len(users), batch):
        scores = recommender.scores(history.subset(range(i, min(i + batch, len(users))))).float().cpu().numpy()
        t = targets[i : i + batch]
        ranks.append(rank_of_targets(scores, t))
        for b, u in enumerate(users[i : i + batch]):
            unseen = np.setdiff1d(np.arange(1, len(recommender.vocab)), full.items[u])
            negatives = rng.choice(unseen, size=min(100, len(unseen)), replace=False)
            sampled.append(1 + int((scores[b, negatives] >= scores[b, t[b]]).sum()))
    metrics_from_ranks(np.concatenate(ranks), k=10)
    return time.monotonic() - start


def time_to_quality(runs: dict[str, dict]) -> dict:
    """Training seconds until val NDCG@10 first reaches 95 % of the best either variant reached."""
    converged = max(max(r["val_ndcg@10"]) for r in runs.values())
    out = {"phase": "time_to_quality", "converged_val_ndcg@10": converged}
    for name, r in runs.items():
        elapsed = np.cumsum(r["epoch_s"])
        hit = next((float(t) for t, v in zip(elapsed, r["val_ndcg@10"], strict=True) if v >= 0.95 * converged), None)
        out[name] = {"seconds": hit, "reached": hit is not None}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=30_000)
    p.add_argument("--items", type=int, default=25_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--seconds", type=float, default=300.0, help="training time cap of each variant")
    p.add_argument("--steps", type=int, default=12, help="steps a variant per throughput round")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--old-eval-users", type=int, default=2_000)
    p.add_argument("--variant", choices=tuple(VARIANTS), help=argparse.SUPPRESS)
    p.add_argument("--skip-throughput", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.variant:
        print(json.dumps(train_variant(args)), flush=True)
        return
    print(json.dumps({"machine": platform.processor() or platform.machine(), "cpus": len(os.sched_getaffinity(0)),
                      "load_avg": os.getloadavg(), "torch": torch.__version__}), flush=True)
    if not args.skip_throughput:
        print(json.dumps(throughput(args)), flush=True)
    runs = {}
    for name in VARIANTS:
        argv = [a for a in sys.argv[1:] if a != "--skip-throughput"] + ["--variant", name]
        out = subprocess.run([sys.executable, __file__, *argv], capture_output=True, text=True, check=True)
        runs[name] = json.loads(out.stdout.strip().splitlines()[-1])
        print(json.dumps(runs[name]), flush=True)
    print(json.dumps({**time_to_quality(runs), "load_avg": os.getloadavg()}), flush=True)


if __name__ == "__main__":
    main()
