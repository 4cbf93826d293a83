"""Benchmark: the nightly run stage by stage on PostgreSQL: wall time and peak RSS of every task (issue 13).

Not a test. Usage:
    .venv/bin/python scripts/benchmark_nightly.py [--events 1000000] [--items 5000] [--shards 4]
        [--max-train-seconds 120] [--admin-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

Creates its own database (dropped at the end), loads a synthetic shop of about ``--events`` events
over 30 days, then runs the DAG's tasks in order, each in a fresh process as an Airflow worker would
(extract, extract_events x N, validate, train, evaluate with force_promote, promote, plan_publish,
publish_shard x N, publish; N = ``--shards`` for both fan-outs), handing each the previous tasks' results as XCom would. Prints per task: seconds and peak
RSS (``VmHWM`` of the task's process, which includes the ~0.4-0.8 GiB of imports); the last line is JSON.
Linux only.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

END = datetime(2026, 1, 31, tzinfo=UTC)
RUN_ID = "scheduled__2026-01-30T00:00:00+00:00"


def _config(tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    return {
        "artifact_root": str(tmp / "artifacts"),
        "window": {"history_days": 28},
        "model": {"use_item_text": False},
        "train": {"epochs": 3, "fine_tune_epochs": 1, "max_train_seconds": args.max_train_seconds},
        "warehouse": {"output_schema": "recsys", "extract_shards": args.shards},
        "publish": {"shards": args.shards, "top_k": 20},
    }


def task(name: str, url: str, config: dict[str, Any], xcom: dict[str, Any], arg: Any) -> Any:
    """Run one task of the nightly DAG in this process (a child); return its XCom value."""
    from recsys_tasks import stages
    from recsys_tasks.config import RecsysConfig

    ctx = stages.context.make_context(
        dag_id="recsys_retrain", run_id=RUN_ID, interval_start=END - timedelta(days=1), interval_end=END,
        warehouse_url=url, config=RecsysConfig.from_mapping(config),
    )
    snapshot = xcom.get("validate", {}).get("snapshot")
    run = {
        "extract": lambda: stages.extract.plan(ctx),
        "extract_events": lambda: stages.extract.run_shard(ctx, arg),
        "validate": lambda: stages.validate.run(ctx, stages.extract.complete(xcom["extract_events"])["snapshot"]),
        "train": lambda: stages.train.run(ctx, snapshot),
        "evaluate": lambda: stages.evaluate.run(ctx, snapshot, xcom["train"]["model_version"], force_promote=True),
        "promote": lambda: stages.promote.run(ctx, xcom["evaluate"]["decision"]),
        "plan_publish": lambda: stages.publish.plan(ctx, snapshot),
        "publish_shard": lambda: stages.publish.stage_shard(ctx, arg),
        "publish": lambda: stages.publish.merge(ctx, xcom["publish_shard"]),
    }[name]
    try:
        return run()
    finally:
        ctx.dispose()


def _child(args: argparse.Namespace) -> None:
    state = json.loads(Path(args.state).read_text())
    Path("/proc/self/clear_refs").write_text("5")
    began = time.perf_counter()
    value = task(args.child, state["url"], state["config"], state["xcom"], state.get("arg"))
    seconds = time.perf_counter() - began
    peak = next(int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM"))
    print(json.dumps({"value": value, "seconds": seconds, "peak_mib": peak / 1024}, default=str))


def _run_task(name: str, state: dict[str, Any], tmp: Path, arg: Any = None) -> dict[str, Any]:
    path = tmp / "state.json"
    path.write_text(json.dumps({**state, "arg": arg}, default=str))
    proc = subprocess.run([sys.executable, __file__, "--child", name, "--state", str(path)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--admin-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--database", default="recsys_bench_nightly")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=5_000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--max-train-seconds", type=float, default=120.0)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--state", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from benchmark_extract import _create_database, _drop_database, _load

    url = sa.engine.make_url(args.admin_url).set(database=args.database).render_as_string(hide_password=False)
    rows = []
    with tempfile.TemporaryDirectory(prefix="recsys-bench-nightly-") as tmp:
        _create_database(args.admin_url, args.database)
        try:
            _load(url, argparse.Namespace(events=args.events, items=args.items, days=30, events_per_user_per_day=1.67))
            state: dict[str, Any] = {"url": url, "config": _config(Path(tmp), args), "xcom": {}}
            out = _run_task("extract", state, Path(tmp))
            rows.append(("extract (catalogue + plan)", out["seconds"], out["peak_mib"]))
            state["xcom"]["extract_events"] = []
            for shard in out["value"]:
                done = _run_task("extract_events", state, Path(tmp), shard)
                state["xcom"]["extract_events"].append(done["value"])
                rows.append((f"extract_events[{shard['shard']}]", done["seconds"], done["peak_mib"]))
            for name in ("validate", "train", "evaluate", "promote", "plan_publish"):
                out = _run_task(name, state, Path(tmp))
                state["xcom"][name] = out["value"]
                rows.append((name, out["seconds"], out["peak_mib"]))
            staged = []
            for shard in state["xcom"]["plan_publish"]:
                out = _run_task("publish_shard", state, Path(tmp), shard)
                staged.append(out["value"])
                rows.append((f"publish_shard[{shard['shard']}]", out["seconds"], out["peak_mib"]))
            state["xcom"]["publish_shard"] = staged
            out = _run_task("publish", state, Path(tmp))
            rows.append(("publish", out["seconds"], out["peak_mib"]))
            published = out["value"]
        finally:
            _drop_database(args.admin_url, args.database)
    print(f"{args.events:,} events, {args.items:,} items, {args.shards} shards: published {published['rows']:,} rows "
          f"for {published['users']:,} users")
    print("| task | seconds | peak RSS (MiB) |\n|---|---|---|")
    for name, seconds, peak in rows:
        print(f"| {name} | {seconds:.1f} | {peak:,.0f} |")
    print(json.dumps({"events": args.events, "items": args.items, "shards": args.shards, "tasks": rows}))


if __name__ == "__main__":
    main()
