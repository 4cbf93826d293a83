"""Benchmark: publishing throughput vs a raw COPY, and peak memory of the publish step.

Not a test. Usage:
    .venv/bin/python scripts/benchmark_publish.py [--url postgresql+psycopg://postgres@127.0.0.1:5432/recsys_test]
        [--users 200000 --k 20 --items 50000] [--rss-users 50000,200000] [--real-users 50000]

1. Throughput (``--users`` x ``--k`` rows): the rows of a fake recommender that returns random top-k
   lists (so the model is not the bottleneck) are (a) formatted into COPY text up front and loaded with
   a raw ``COPY ... FROM STDIN`` into an unindexed table, (b) published with ``write_publication`` from
   the same recommender, end to end: rows built per chunk, business rules, COPY into the stage,
   primary key + item index build, atomic partition swap. Both write the same rows (same seed).
2. Peak RSS of the publish step, one fresh subprocess per user count (``--rss-users``): the peak is
   reset (``/proc/self/clear_refs``) after the inputs are built, so it is the publish step's own peak.
3. With ``--real-users``: the same publish with a real (untrained, same cost) transformer recommender.

Everything is written to a fresh schema that is dropped afterwards.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from recsys_tasks.config import PublishConfig
from recsys_tasks.data.publication import write_publication
from recsys_tasks.data.sequences import ItemVocab, SequenceData
from recsys_tasks.data.warehouse import ensure_output_schema
from recsys_tasks.serving.ranking import Rules, recommendation_rows

AS_OF = date(2026, 2, 1)
STAMP = datetime(2026, 2, 1, 3, 0, tzinfo=UTC)
MODEL = "m20260201-0123456789"
RUN = "scheduled__2026-02-01T00:00:00+00:00"


class RandomRecommender:
    """Random distinct top-k per user, scores descending; cheap enough that publishing is what is measured."""

    def __init__(self, num_items: int, seed: int = 7) -> None:
        self.vocab = ItemVocab(f"i{n:07d}" for n in range(num_items))
        self.seed = seed

    def recommend(self, histories, *, k, exclude=None, batch_users=4096):
        rng = np.random.default_rng(self.seed)
        n = len(self.vocab) - 1
        steps = np.arange(k, dtype=np.int64) * 7919  # a prime stride: k distinct items per row
        for start in range(0, len(histories), batch_users):
            B = min(batch_users, len(histories) - start)
            base = rng.integers(0, n, size=(B, 1))
            top = (base + steps) % n + 1
            scores = -np.sort(-rng.random((B, k), dtype=np.float32), axis=1) * 10
            yield start, top, scores


def make_histories(users: int, num_items: int, *, length: int, seed: int = 11) -> SequenceData:
    """``users`` histories of ``length`` random views each (small next to the rows they produce)."""
    rng = np.random.default_rng(seed)
    items = rng.integers(1, num_items, size=(users, length))
    kinds = np.ones(length, dtype=np.int64)
    times = 1_769_000_000 + 3600 * np.arange(length, dtype=np.int64)
    return SequenceData([f"u{u:07d}" for u in range(users)], list(items), [kinds] * users, [times] * users)


def rows_for(recommender, histories: SequenceData, *, k: int, rules: Rules):
    titles = {i: f"Product {i[1:]}" for i in recommender.vocab.item_ids}
    return recommendation_rows(recommender, histories, k=k, exclude=None, as_of=AS_OF, run_id=RUN, model_version=MODEL,
                               titles=titles, generated_at=STAMP, rules=rules)


def benchmark_rules(num_items: int) -> Rules:
    """Rules with demotion and the category cap on (no vectors: a random recommender has none)."""
    cfg = PublishConfig()
    rng = np.random.default_rng(3)
    return Rules(margin=cfg.candidate_margin, demote_after=cfg.demote_after, demote_factor=cfg.demote_factor,
                 min_history=cfg.min_history, max_per_category=None,
                 item_category=rng.integers(0, 50, size=num_items + 1), category_names=tuple(f"c{n}" for n in range(50)),
                 trending_counts=rng.integers(0, 100, size=num_items + 1).astype(np.float64))


def raw_copy(engine: sa.Engine, schema: str, recommender, histories: SequenceData, *, k: int, rules: Rules) -> tuple[int, float]:
    """Format the same rows as COPY text first (not timed), then time a raw COPY of them."""
    path = Path(f"/tmp/benchmark_publish_{os.getpid()}.tsv")
    count = 0
    with path.open("w", encoding="utf-8") as fh:
        for row in rows_for(recommender, histories, k=k, rules=rules):
            fields = (row.as_of.isoformat(), row.user_id, str(row.rank), row.item_id, repr(row.score), row.model_version,
                      row.run_id, row.reason, row.generated_at.isoformat())
            fh.write("\t".join(fields) + "\n")
            count += 1
    raw = engine.raw_connection()
    try:
        pg = raw.driver_connection
        with pg.cursor() as cur:
            cur.execute(f'CREATE TABLE "{schema}".raw_copy (LIKE "{schema}".recommendations)')
            pg.commit()
            started = time.perf_counter()
            with cur.copy(f'COPY "{schema}".raw_copy FROM STDIN') as copy, path.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    copy.write(block)
            pg.commit()
            seconds = time.perf_counter() - started
    finally:
        raw.close()
        path.unlink(missing_ok=True)
    return count, seconds


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(field)


def rss_child(url: str, users: int, k: int, items: int, history: int, real: bool) -> dict[str, float]:
    """One measured publish in this process: inputs first, then the peak RSS of the publish step alone."""
    engine = sa.create_engine(url)
    schema = "bench_" + uuid.uuid4().hex[:8]
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        ensure_output_schema(engine, schema)
        recommender = real_recommender(items) if real else RandomRecommender(items)
        histories = make_histories(users, items, length=history)
        rules = benchmark_rules(items)
        before = _status("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM: the peak from here on is publish's
        started = time.perf_counter()
        result = write_publication(engine, schema, rows_for(recommender, histories, k=k, rules=rules), as_of=AS_OF, run_id=RUN,
                         model_version=MODEL, top_k=k)
        seconds = time.perf_counter() - started
        return {"users": users, "rows": result.rows, "seconds": seconds, "rss_before_mb": before / 2**20,
                "peak_rss_mb": _status("VmHWM") / 2**20, "publish_extra_mb": (_status("VmHWM") - before) / 2**20}
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


def real_recommender(num_items: int):
    """A transformer recommender of the default model shape (untrained: inference costs the same)."""
    import torch

    from recsys_tasks.config import ModelConfig
    from recsys_tasks.modeling.artifacts import build_model
    from recsys_tasks.serving.recommender import Recommender

    torch.manual_seed(0)
    vocab = ItemVocab(f"i{n:07d}" for n in range(num_items))
    model = build_model("transformer", ModelConfig(use_item_text=False), len(vocab)).eval()
    return Recommender(kind="transformer", vocab=vocab, popularity=np.ones(len(vocab), dtype=np.float32), model=model)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/recsys_test")
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--history", type=int, default=10, help="events per user history")
    parser.add_argument("--rss-users", default="50000,200000", help="comma-separated user counts for the RSS runs ('' = skip)")
    parser.add_argument("--real-users", type=int, default=0, help="also publish this many users with a real transformer")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-real", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.child:
        print(json.dumps(rss_child(args.url, args.child, args.k, args.items, args.history, args.child_real)))
        return

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.platform()}")
    engine = sa.create_engine(args.url)
    with engine.connect() as conn:
        print("server:", conn.execute(sa.text("SELECT version()")).scalar().split(",")[0])
    schema = "bench_" + uuid.uuid4().hex[:8]
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        ensure_output_schema(engine, schema)
        recommender = RandomRecommender(args.items)
        histories = make_histories(args.users, args.items, length=args.history)
        for label, rules in (("plain top-k", Rules()), ("with rules", benchmark_rules(args.items))):
            rows, raw_s = raw_copy(engine, schema, recommender, histories, k=args.k, rules=rules)
            with engine.begin() as conn:
                conn.execute(sa.text(f'DROP TABLE "{schema}".raw_copy'))
            started = time.perf_counter()
            result = write_publication(engine, schema, rows_for(recommender, histories, k=args.k, rules=rules), as_of=AS_OF,
                             run_id=RUN, model_version=MODEL, top_k=args.k)
            pub_s = time.perf_counter() - started
            assert result.rows == rows, (result.rows, rows)
            print(f"{label}: {rows:,} rows | raw COPY {raw_s:.1f}s = {rows / raw_s:,.0f} rows/s | "
                  f"publish {pub_s:.1f}s = {rows / pub_s:,.0f} rows/s | publish/raw = {raw_s / pub_s:.0%}")
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()

    sizes = [int(s) for s in args.rss_users.split(",") if s.strip()]
    runs = [(n, False) for n in sizes] + ([(args.real_users, True)] if args.real_users else [])
    for users, real in runs:
        cmd = [sys.executable, __file__, "--url", args.url, "--k", str(args.k), "--items", str(args.items),
               "--history", str(args.history), "--child", str(users)] + (["--child-real"] if real else [])
        out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
        kind = "real transformer" if real else "random recommender"
        print(f"RSS {kind}, {users:,} users: publish {out['seconds']:.1f}s ({out['rows'] / out['seconds']:,.0f} rows/s), "
              f"RSS before {out['rss_before_mb']:.0f} MiB, peak during publish {out['peak_rss_mb']:.0f} MiB "
              f"(+{out['publish_extra_mb']:.0f} MiB)")


if __name__ == "__main__":
    main()
