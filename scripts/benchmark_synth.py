"""Benchmark: generate ~1M synthetic events and COPY them into PostgreSQL.

Not a test. Usage:
    .venv/bin/python scripts/benchmark_synth.py [--url postgresql+psycopg://postgres@127.0.0.1:5432/recsys_test]
        [--users 20000 --items 5000 --days 30 --events-per-user-per-day 1.67]

Loads into a fresh schema (dropped afterwards) and prints one line per phase.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import time
import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from recsys_tasks.config import WarehouseConfig
from recsys_tasks.data import sources, synth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/recsys_test")
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--items", type=int, default=5_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--events-per-user-per-day", type=float, default=1.67)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    log = logging.getLogger("benchmark_synth")
    log.setLevel(logging.INFO)

    end = datetime(2026, 1, 31, tzinfo=UTC)
    began = time.perf_counter()
    events, items = synth.generate(
        n_users=args.users, n_items=args.items, start=end - timedelta(days=args.days), end=end,
        events_per_user_per_day=args.events_per_user_per_day, seed=args.seed,
    )
    generated = time.perf_counter()

    schema = "bench_" + uuid.uuid4().hex[:8]
    engine = sa.create_engine(args.url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        sources.load(engine, events, items, warehouse=WarehouseConfig(source_schema=schema))
        loaded = time.perf_counter()
        with engine.connect() as conn:
            n = conn.exec_driver_sql(f'SELECT count(*) FROM "{schema}"."events"').scalar_one()
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        engine.dispose()

    gen_s, load_s = generated - began, loaded - generated
    log.info("machine: %s, %d CPUs, Python %s", platform.machine(), os.cpu_count(), platform.python_version())
    log.info("events: %d generated, %d in PostgreSQL; items: %d", len(events), n, len(items))
    log.info("generate: %.1f s (%.0f events/s)", gen_s, len(events) / gen_s)
    log.info("load (COPY, incl. DDL + index): %.1f s (%.0f events/s)", load_s, len(events) / load_s)
    log.info("total: %.1f s", gen_s + load_s)


if __name__ == "__main__":
    main()
