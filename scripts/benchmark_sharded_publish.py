"""Benchmark: one publication written by N parallel shard writers vs one writer vs a raw COPY of the same rows.

Not a test. Usage:
    .venv/bin/python scripts/benchmark_sharded_publish.py [--url postgresql+psycopg://postgres@127.0.0.1:5432/recsys_test]
        [--users 200000 --k 20 --items 50000 --shards 4]

The rows come from the random recommender of ``benchmark_publish.py`` (the model is not what is
measured). In the same run, on the same rows: (a) a raw ``COPY`` into an unindexed table; (b)
``write_publication`` in one process; (c) ``--shards`` processes started together, each building
and staging the rows of its users (``crc32(user) mod N``, ``sharded_publication.stage_shard``),
then ``merge_shards`` (counts checked, server-side copy into the publication's stage, index build,
atomic swap). Wall times; (c) is from the start of the shard processes to the end of the merge.
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
from pathlib import Path

import numpy as np
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_publish import AS_OF, MODEL, RUN, RandomRecommender, make_histories, raw_copy, rows_for  # noqa: E402

from recsys_tasks.data.publication import write_publication  # noqa: E402
from recsys_tasks.data.publish_safety import PublishPolicy  # noqa: E402
from recsys_tasks.data.sequences import SequenceData  # noqa: E402
from recsys_tasks.data.sharded_publication import StagedShard, merge_shards, stage_shard  # noqa: E402
from recsys_tasks.data.shards import shard_of  # noqa: E402
from recsys_tasks.data.warehouse import ensure_output_schema  # noqa: E402
from recsys_tasks.serving.ranking import Rules  # noqa: E402


def _subset(histories: SequenceData, keep: np.ndarray) -> SequenceData:
    idx = np.flatnonzero(keep)
    return SequenceData([histories.user_ids[i] for i in idx], [histories.items[i] for i in idx],
                        [histories.event_types[i] for i in idx], [histories.timestamps[i] for i in idx])


def shard_child(url: str, schema: str, users: int, k: int, items: int, shard: int, shards: int) -> dict:
    """One shard writer: build its users' rows and stage them (what a mapped publish_shard task does)."""
    histories = make_histories(users, items, length=10)
    mine = _subset(histories, shard_of(histories.user_ids, shards) == shard)
    recommender = RandomRecommender(items, seed=7 + shard)
    engine = sa.create_engine(url)
    staged = stage_shard(engine, schema, rows_for(recommender, mine, k=k, rules=Rules()), as_of=AS_OF, run_id=RUN,
                         shard=shard, shards=shards, top_k=k, model_version=MODEL)
    engine.dispose()
    return staged.to_dict()


def sharded(url: str, schema: str, args: argparse.Namespace) -> tuple[int, float, float]:
    started = time.perf_counter()
    procs = [
        subprocess.Popen([sys.executable, __file__, "--url", url, "--users", str(args.users), "--k", str(args.k),
                          "--items", str(args.items), "--child-schema", schema, "--child-shard", str(i), "--shards", str(args.shards)],
                         stdout=subprocess.PIPE, text=True)
        for i in range(args.shards)
    ]
    staged = []
    for proc in procs:
        out, _ = proc.communicate()
        assert proc.returncode == 0, f"shard writer failed ({proc.returncode})"
        staged.append(StagedShard(**json.loads(out.strip().splitlines()[-1])))
    staged_s = time.perf_counter() - started
    engine = sa.create_engine(url)
    result = merge_shards(engine, schema, staged, as_of=AS_OF, run_id=RUN, policy=PublishPolicy.from_config())
    engine.dispose()
    return result.rows, time.perf_counter() - started, staged_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/recsys_test")
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--child-schema", help=argparse.SUPPRESS)
    parser.add_argument("--child-shard", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.child_schema:
        print(json.dumps(shard_child(args.url, args.child_schema, args.users, args.k, args.items, args.child_shard, args.shards)))
        return
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    engine = sa.create_engine(args.url)
    schema = "bench_" + uuid.uuid4().hex[:8]
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        ensure_output_schema(engine, schema)
        histories = make_histories(args.users, args.items, length=10)
        recommender = RandomRecommender(args.items)
        rows, raw_s = raw_copy(engine, schema, recommender, histories, k=args.k, rules=Rules())
        started = time.perf_counter()
        one = write_publication(engine, schema, rows_for(recommender, histories, k=args.k, rules=Rules()), as_of=AS_OF,
                                run_id=RUN, model_version=MODEL, top_k=args.k)
        one_s = time.perf_counter() - started
        n_rows, n_s, staged_s = sharded(args.url, schema, args)
        assert one.rows == rows == n_rows, (one.rows, rows, n_rows)
        print(f"{rows:,} rows | raw COPY {raw_s:.1f}s = {rows / raw_s:,.0f} rows/s | 1 writer {one_s:.1f}s = "
              f"{rows / one_s:,.0f} rows/s | {args.shards} shard writers + merge {n_s:.1f}s = {rows / n_s:,.0f} rows/s | "
              f"{args.shards} vs 1 = {one_s / n_s:.2f}x, vs raw = {raw_s / n_s:.0%} | of which parallel staging "
              f"{staged_s:.1f}s, merge + swap {n_s - staged_s:.1f}s")
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


if __name__ == "__main__":
    main()
