"""Peak memory of top-k scoring against the catalogue size: item slices vs the full score matrix.

Each measurement runs in a fresh process (peak RSS is per process): an untrained transformer of the
default width over a catalogue of N items scores ``--users`` histories and keeps the top 10, either
with the default ``item_chunk`` (a running top-k over slices) or with ``item_chunk = N`` (the whole
(users, N) score matrix at once, as before). Usage:

    .venv/bin/python scripts/benchmark_scoring_memory.py --items 5000 100000 1000000 --users 2048
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def measure(items: int, users: int, item_chunk: int | None) -> dict[str, float]:
    import numpy as np
    import torch

    from recsys_tasks.config import ModelConfig
    from recsys_tasks.data.sequences import ItemVocab, SequenceData
    from recsys_tasks.modeling.artifacts import build_model
    from recsys_tasks.serving.recommender import ITEM_CHUNK, Recommender

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    vocab = ItemVocab([f"i{i}" for i in range(items)])
    cfg = ModelConfig(use_item_text=False)
    model = build_model("transformer", cfg, len(vocab)).eval()
    lengths = rng.integers(3, 30, size=users)
    data = SequenceData(
        [f"u{u}" for u in range(users)],
        [rng.integers(1, items + 1, size=n) for n in lengths],
        [np.ones(n, dtype=np.int64) for n in lengths],
        [np.arange(n, dtype=np.int64) * 60 for n in lengths],
    )
    rec = Recommender(kind="transformer", vocab=vocab, popularity=np.ones(len(vocab), dtype=np.float32), model=model)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    chunk = item_chunk or ITEM_CHUNK
    for _ in rec.recommend(data, k=10, batch_users=users, item_chunk=chunk):
        pass
    return {
        "items": items,
        "users": users,
        "item_chunk": chunk,
        "seconds": round(time.perf_counter() - started, 2),
        "rss_before_mib": round(base),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, nargs="+", default=[5_000, 100_000, 1_000_000])
    parser.add_argument("--users", type=int, default=2048)
    parser.add_argument("--one", nargs=3, type=int, metavar=("ITEMS", "USERS", "CHUNK"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        items, users, chunk = args.one
        print(json.dumps(measure(items, users, chunk or None)))
        return
    print("| items | item_chunk | peak RSS (MiB) | RSS before scoring (MiB) | seconds |")
    print("|---|---|---|---|---|")
    for items in args.items:
        for chunk in (0, items):  # 0: the default slice size; items: the whole matrix at once
            out = subprocess.run(
                [sys.executable, __file__, "--one", str(items), str(args.users), str(chunk)],
                check=False, capture_output=True, text=True,
            )
            label = "all (full matrix)" if chunk else "16,384 (default)"
            if out.returncode != 0:  # e.g. SIGKILL by the kernel's out-of-memory killer
                print(f"| {items:,} | {label} | killed (exit {out.returncode}) | | |", flush=True)
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"| {items:,} | {label} | {r['peak_rss_mib']:,} | {r['rss_before_mib']:,} | {r['seconds']} |", flush=True)


if __name__ == "__main__":
    main()
