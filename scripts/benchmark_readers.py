"""Benchmark: readers of latest_recommendations during a publish, next to a long analyst transaction.

Not a test. Usage:
    .venv/bin/python scripts/benchmark_readers.py [--url postgresql+psycopg://postgres@127.0.0.1:5432/recsys_test]
        [--users 50000 --k 10 --readers 50 --aggregate-readers 5 --analyst-seconds 8]

In a fresh PostgreSQL schema (dropped afterwards) one publication of ``--users`` x ``--k`` rows is
written; then two phases run, each with ``--readers`` threads reading ``latest_recommendations``
through their own autocommit connections the whole time:

- point readers: one random user's list (``WHERE user_id = ...``), then ``--point-pause`` seconds;
- aggregate readers (``--aggregate-readers`` of them): rows per run_id over the whole view, then
  ``--aggregate-pause`` seconds (a dashboard refreshing);
- one analyst: a transaction that runs a slow aggregate and keeps its transaction (and so its
  ACCESS SHARE lock) open for ``--analyst-seconds``, started just before the publish;
- the publish itself (``write_publication`` with the config's lock settings): (a) a nightly publish
  of a new as-of date, (b) a re-publish of that same date (the partition swap needs ACCESS EXCLUSIVE).

A read is *mixed* when one query sees rows of two run_ids, *partial* when a user's list (or the
whole view) has fewer rows than published. Reported per phase and read kind: reads, mixed, partial,
p50/p99/max latency, reads over 1 s, and the publish's wall time and lock back-offs. Every thread
stops by itself at the phase's end (and at a hard deadline), so a run is bounded to a few minutes.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import random
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import numpy as np
import sqlalchemy as sa

from recsys_tasks.data.publication import RecommendationRow, write_publication
from recsys_tasks.data.publish_safety import PublishPolicy
from recsys_tasks.data.warehouse import ensure_output_schema

DAY1, DAY2 = date(2026, 2, 1), date(2026, 2, 2)
STAMP = datetime(2026, 2, 2, 3, 0, tzinfo=UTC)


def publication_rows(as_of: date, *, users: int, k: int, run: str, seed: int) -> Iterator[RecommendationRow]:
    """``users`` x ``k`` rows of one publication (random items, scores descending), grouped by user."""
    rng = np.random.default_rng(seed)
    for u in range(users):
        items = rng.choice(20_000, size=k, replace=False)
        for rank, item in enumerate(items.tolist(), start=1):
            yield RecommendationRow(as_of, f"u{u:07d}", rank, f"i{item:05d}", 1.0 / rank, f"m-{run}", run, "trending now", STAMP)


@dataclass
class Reads:
    """What one kind of reader saw in one phase."""

    latencies: list[float] = field(default_factory=list)
    mixed: int = 0
    partial: int = 0

    def summary(self) -> dict[str, float | int]:
        lat = np.array(self.latencies) * 1000 if self.latencies else np.zeros(1)
        return {
            "reads": len(self.latencies), "mixed": self.mixed, "partial": self.partial,
            "p50_ms": round(float(np.percentile(lat, 50)), 1), "p99_ms": round(float(np.percentile(lat, 99)), 1),
            "max_ms": round(float(lat.max()), 1), "over_1s": int((lat > 1000).sum()),
        }


def point_reader(
    engine: sa.Engine, schema: str, users: int, k: int, pause: float, stop: threading.Event, out: Reads, lock: threading.Lock
) -> None:
    sql = sa.text(f'SELECT rank, run_id FROM "{schema}".latest_recommendations WHERE user_id = :u ORDER BY rank')
    rnd = random.Random(threading.get_ident())
    with engine.connect() as conn:
        while not stop.is_set():
            user = f"u{rnd.randrange(users):07d}"
            started = time.perf_counter()
            rows = conn.execute(sql, {"u": user}).all()
            took = time.perf_counter() - started
            with lock:
                out.latencies.append(took)
                out.mixed += len({r.run_id for r in rows}) > 1
                out.partial += len(rows) != k
            stop.wait(pause)


def aggregate_reader(
    engine: sa.Engine, schema: str, total: int, pause: float, stop: threading.Event, out: Reads, lock: threading.Lock
) -> None:
    sql = sa.text(f'SELECT run_id, count(*) AS n FROM "{schema}".latest_recommendations GROUP BY run_id')
    with engine.connect() as conn:
        while not stop.is_set():
            started = time.perf_counter()
            groups = conn.execute(sql).all()
            took = time.perf_counter() - started
            with lock:
                out.latencies.append(took)
                out.mixed += len(groups) > 1
                out.partial += sum(g.n for g in groups) != total
            stop.wait(pause)


def analyst(engine: sa.Engine, schema: str, seconds: float, held: threading.Event) -> None:
    """A long analyst transaction: a slow aggregate, then the transaction (and its locks) stays open."""
    with engine.connect() as conn:
        conn.execute(sa.text(f'SELECT count(DISTINCT user_id), avg(score) FROM "{schema}".latest_recommendations')).one()
        held.set()
        conn.execute(sa.text("SELECT pg_sleep(:s)"), {"s": seconds})
        conn.commit()


def phase(engine: sa.Engine, readers: sa.Engine, schema: str, args: argparse.Namespace, *, name: str, as_of: date, run: str, seed: int) -> dict:
    """Readers + analyst + one publish of ``as_of``; returns the phase's figures."""
    stop, lock = threading.Event(), threading.Lock()
    point, aggregate = Reads(), Reads()
    threads = [
        threading.Thread(target=aggregate_reader, args=(readers, schema, args.users * args.k, args.aggregate_pause, stop, aggregate, lock), daemon=True)
        for _ in range(args.aggregate_readers)
    ] + [
        threading.Thread(target=point_reader, args=(readers, schema, args.users, args.k, args.point_pause, stop, point, lock), daemon=True)
        for _ in range(args.readers - args.aggregate_readers)
    ]
    for t in threads:
        t.start()
    time.sleep(1.0)  # readers warm up on the previous publication
    held = threading.Event()
    # Not autocommit: the analyst's transaction, and its lock, spans both statements.
    long_reader = threading.Thread(target=analyst, args=(engine, schema, args.analyst_seconds, held), daemon=True)
    long_reader.start()
    held.wait(timeout=60)
    started = time.perf_counter()
    result = write_publication(
        engine, schema, publication_rows(as_of, users=args.users, k=args.k, run=run, seed=seed), as_of=as_of, run_id=run,
        model_version=f"m-{run}", top_k=args.k, policy=PublishPolicy.from_config(),
    )
    wall = time.perf_counter() - started
    time.sleep(1.0)  # and read the new one for a while
    stop.set()
    for t in [*threads, long_reader]:
        t.join(timeout=args.analyst_seconds + 30)
    return {
        "phase": name, "publish_s": round(wall, 2), "lock_waits": result.lock_waits, "rows": result.rows,
        "point": point.summary(), "aggregate": aggregate.summary(),
    }


def _out_of_time(*_: object) -> None:
    raise SystemExit("the benchmark ran past 5 minutes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/recsys_test")
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--readers", type=int, default=50)
    parser.add_argument("--aggregate-readers", type=int, default=5)
    parser.add_argument("--point-pause", type=float, default=0.02)
    parser.add_argument("--aggregate-pause", type=float, default=0.5)
    parser.add_argument("--analyst-seconds", type=float, default=8.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    engine = sa.create_engine(args.url)
    readers = sa.create_engine(args.url, isolation_level="AUTOCOMMIT", pool_size=args.readers + 2, max_overflow=0)
    schema = "bench_readers_" + uuid.uuid4().hex[:8]
    signal.signal(signal.SIGALRM, _out_of_time)
    signal.alarm(300)  # a hard bound; the schema is still dropped
    try:
        ensure_output_schema(engine, schema)
        write_publication(
            engine, schema, publication_rows(DAY1, users=args.users, k=args.k, run="run-0", seed=0), as_of=DAY1,
            run_id="run-0", model_version="m-run-0", top_k=args.k,
        )
        with engine.connect() as conn:  # planner statistics, as a nightly ANALYZE would leave them
            conn.execute(sa.text(f'ANALYZE "{schema}".recommendations'))
            conn.commit()
        results = [
            phase(engine, readers, schema, args, name="(a) nightly publish of a new date", as_of=DAY2, run="run-1", seed=1),
            phase(engine, readers, schema, args, name="(b) re-publish of the same date", as_of=DAY2, run="run-2", seed=2),
        ]
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()
        readers.dispose()
    print(json.dumps({"machine": platform.platform(), "args": vars(args), "results": results}, indent=2))


if __name__ == "__main__":
    main()
