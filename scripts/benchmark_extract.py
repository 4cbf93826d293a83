"""Benchmark: extraction of a run's snapshot from PostgreSQL, by COPY against fetching rows (issue 13).

Not a test. Usage:
    .venv/bin/python scripts/benchmark_extract.py [--events 1000000] [--repeat 2]
        [--admin-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres] [--database recsys_bench_extract]

Creates its own database (dropped at the end unless --keep), loads a synthetic shop of about
``--events`` events into it as ``python -m recsys_tasks.cli synth`` does, then times
``extract_interval`` over the whole window, each time in a fresh process: rows fetched and converted
in pandas (COPY switched off with ``pg_copy.COPY_OPTION``) and COPY, alternating which goes first.
Prints each run, the best of each, their ratio, each process's RSS before extracting and its peak
during extraction (``VmHWM``, reset just before), and whether the Parquet files are equal; the last
line is JSON. Linux only (reads /proc/self/status).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from recsys_tasks.config import check_identifier

END = datetime(2026, 1, 31, tzinfo=UTC)
MODES = ("fetch", "copy")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--admin-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--database", default="recsys_bench_extract")
    parser.add_argument("--events", type=int, default=1_000_000, help="about this many events (users are derived)")
    parser.add_argument("--items", type=int, default=5_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--events-per-user-per-day", type=float, default=1.67)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each mode; the best counts")
    parser.add_argument("--keep", action="store_true", help="keep the database for another run (--reuse)")
    parser.add_argument("--reuse", action="store_true", help="extract from the database a --keep run left")
    parser.add_argument("--measure", choices=MODES, help=argparse.SUPPRESS)  # one timed run, in a child process
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    check_identifier(args.database, key="--database")
    url = sa.engine.make_url(args.admin_url).set(database=args.database).render_as_string(hide_password=False)
    if args.measure:
        print(json.dumps(measure(url, args.measure, args.days, args.out)))
        return

    try:
        if not args.reuse:
            _create_database(args.admin_url, args.database)
            _load(url, args)
        runs = _time_runs(url, args)
    finally:
        if not args.keep:
            _drop_database(args.admin_url, args.database)
    _report(runs, args)


def measure(url: str, mode: str, days: int, out: Path) -> dict:
    """Extract the whole window once into ``out``; what it took."""
    from recsys_tasks.config import WarehouseConfig
    from recsys_tasks.data import pg_copy
    from recsys_tasks.data.snapshot import extract_interval

    engine = sa.create_engine(url).execution_options(**{pg_copy.COPY_OPTION: mode == "copy"})
    with engine.connect():  # connect outside the timing, as a pooled task would
        pass
    rss_before = _status_mib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM: the peak from here on is extraction's
    began = time.perf_counter()
    snap = extract_interval(engine, WarehouseConfig(), start=END - timedelta(days=days), end=END, out_dir=out)
    seconds = time.perf_counter() - began
    peak = _status_mib("VmHWM")
    engine.dispose()
    return {"mode": mode, "events": snap.events, "items": snap.items, "seconds": seconds,
            "rows_per_s": (snap.events + snap.items) / seconds, "peak_rss_mib": peak, "rss_before_mib": rss_before}


def _status_mib(field: str) -> float:
    """A memory figure of this process from /proc/self/status (Linux), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _load(url: str, args: argparse.Namespace) -> None:
    from recsys_tasks.config import WarehouseConfig
    from recsys_tasks.data import sources, synth

    users = max(1, round(args.events / (args.days * args.events_per_user_per_day)))
    began = time.perf_counter()
    events, items = synth.generate(
        n_users=users, n_items=args.items, start=END - timedelta(days=args.days), end=END,
        events_per_user_per_day=args.events_per_user_per_day, seed=7,
    )
    engine = sa.create_engine(url)
    try:
        sources.load(engine, events, items, warehouse=WarehouseConfig(), replace=True)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE")  # the planner's row counts, as autovacuum would set them
    finally:
        engine.dispose()
    print(f"loaded {len(events):,} events ({users:,} users) and {len(items):,} items in {time.perf_counter() - began:.1f} s")


def _time_runs(url: str, args: argparse.Namespace) -> list[dict]:
    runs = []
    with tempfile.TemporaryDirectory(prefix="recsys-bench-extract-") as tmp:
        for r in range(args.repeat):
            for mode in MODES if r % 2 == 0 else MODES[::-1]:
                out = Path(tmp) / mode
                cmd = [sys.executable, __file__, "--measure", mode, "--admin-url", args.admin_url,
                       "--database", args.database, "--days", str(args.days), "--out", str(out)]
                load = os.getloadavg()[0]
                run = json.loads(subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout.splitlines()[-1])
                run["load_average"] = load
                runs.append(run)
                print(f"{mode:5s} {run['seconds']:7.2f} s  {run['rows_per_s']:>10,.0f} rows/s  "
                      f"peak RSS {run['peak_rss_mib']:6.0f} MiB (before extracting {run['rss_before_mib']:.0f})  "
                      f"load average {load:.1f}")
        runs.append({"identical": _same_files(Path(tmp) / "fetch", Path(tmp) / "copy")})
    return runs


def _same_files(a: Path, b: Path) -> bool:
    import pyarrow.parquet as pq

    return all(pq.read_table(a / name).equals(pq.read_table(b / name)) for name in ("events.parquet", "items.parquet"))


def _report(runs: list[dict], args: argparse.Namespace) -> None:
    identical = runs.pop()["identical"]
    best = {mode: max((r for r in runs if r["mode"] == mode), key=lambda r: r["rows_per_s"]) for mode in MODES}
    ratio = best["copy"]["rows_per_s"] / best["fetch"]["rows_per_s"]
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    for mode in MODES:
        b = best[mode]
        print(f"best {mode}: {b['rows_per_s']:,.0f} rows/s ({b['events']:,} events + {b['items']:,} items in {b['seconds']:.2f} s)")
    print(f"copy / fetch: {ratio:.1f}x; Parquet files identical: {identical}")
    print(json.dumps({"runs": runs, "ratio": ratio, "identical": identical, "events_arg": args.events}))


def _create_database(admin_url: str, name: str) -> None:
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    finally:
        admin.dispose()


def _drop_database(admin_url: str, name: str) -> None:
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        admin.dispose()


if __name__ == "__main__":
    main()
