"""Time every query of the Recommendations UI page on a PostgreSQL output schema with 1M recommendation rows.

Fills a fresh schema (dropped afterwards unless --keep) with one publication of
``--users`` x ``--top-k`` rows (1M by default) plus an older one, a catalogue, similar items,
a registry of ``--versions`` models, a year of evaluations and validation runs, all written with
the library's own writers; then calls each ``recsys_tasks.insights`` function the endpoints call,
``--repeat`` times with random ids, through the read-only engine the plugin uses, and prints
p50 / p95 / max per endpoint. Figures are recorded in docs/ui.md.

    .venv/bin/python scripts/benchmark_ui.py --url postgresql+psycopg://postgres@127.0.0.1:5432/recsys_test
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import time
import uuid
from datetime import date, datetime, timedelta, timezone

import pandas as pd
import sqlalchemy as sa

from recsys_tasks import insights, lookups, registry
from recsys_tasks.config import RecsysConfig
from recsys_tasks.data import publication, sources, synth
from recsys_tasks.data.warehouse import create_engine, ensure_output_schema
from recsys_tasks.modeling import evaluation
from recsys_tasks.sqlfiles import statement

log = logging.getLogger("benchmark_ui")


def fill(engine: sa.Engine, cfg: RecsysConfig, *, users: int, top_k: int, items: int, versions: int) -> date:
    """Write the benchmark's outputs; return the newest as-of date."""
    schema = cfg.warehouse.output_schema
    ensure_output_schema(engine, schema)
    rng = random.Random(0)
    catalogue = pd.DataFrame(
        {
            "item_id": [f"i{i:06d}" for i in range(items)],
            "title": [f"Item number {i}" for i in range(items)],
            "category": [f"c{i % 50}" for i in range(items)],
            "created_at": pd.Timestamp("2025-01-01", tz="UTC"),
        }
    )
    events = pd.DataFrame({c: pd.Series(dtype="object") for c in synth.EVENT_COLUMNS})
    sources.load(engine, events, catalogue, warehouse=cfg.warehouse)

    newest = date(2026, 1, 5)
    start = datetime(2025, 1, 1, tzinfo=timezone.utc)
    parent = None
    for v in range(versions):
        day = newest - timedelta(days=versions - 1 - v)
        version = f"m{v:04d}"
        registry.register_model(
            engine, schema, model_version=version, parent_version=parent, kind="gpt2", dag_id="recsys_retrain",
            run_id=f"r{v}", as_of=day, data_start=start, data_end=datetime.combine(day, datetime.min.time(), timezone.utc),
            artifact_uri="file:///m", checksum="x", config={}, metrics={"ndcg@10": 0.2 + rng.random() / 20},
        )
        if v % 3 == 0:
            registry.promote(engine, schema, version, decision="better")
            parent = version
        else:
            registry.set_status(engine, schema, version, "rejected", decision="worse")
        for role, model in (("challenger", version), ("baseline", "most_popular")):
            evaluation.store_evaluation(
                engine, schema, run_id=f"r{v}", as_of=day, model_version=model, role=role,
                metrics={seg: {"ndcg@10": rng.random(), "hr@10": rng.random(), "users": 1000}
                         for seg in ("all", "new_users", "short_history", "long_history")},
            )
        with engine.begin() as conn:
            conn.execute(
                statement("insert_validation_result", schema=schema),
                [{"run_id": f"r{v}", "as_of": day.isoformat(), "suite": "events", "expectation": f"e{e}",
                  "column_name": "user_id", "severity": "warning", "success": e % 7 != 0, "observed_value": "1",
                  "details": None, "created_at": f"{day.isoformat()} 03:00:00+00:00"} for e in range(30)],
            )
            conn.execute(
                statement("upsert_validation_run", schema=schema),
                {"run_id": f"r{v}", "as_of": day.isoformat(), "interval_events": 100000, "success": True,
                 "docs_uri": None, "created_at": f"{day.isoformat()} 03:00:00+00:00"},
            )

    stamp = datetime(2026, 1, 5, 3, tzinfo=timezone.utc)
    for day, n_users in ((newest - timedelta(days=1), users // 10), (newest, users)):
        rows = (
            publication.RecommendationRow(day, f"u{u:07d}", rank, f"i{rng.randrange(items):06d}", 1.0 / rank, "m0000", "r0", "because", stamp)
            for u in range(n_users)
            for rank in range(1, top_k + 1)
        )
        publication.write_publication(engine, schema, rows, as_of=day, run_id="r0", model_version="m0000", top_k=top_k)
    similar = (
        publication.SimilarItemRow(newest, f"i{i:06d}", rank, f"i{rng.randrange(items):06d}", 1.0 / rank, "m0000")
        for i in range(items)
        for rank in range(1, 21)
    )
    publication.write_similar_items(engine, schema, similar, as_of=newest)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(f'ANALYZE "{schema}".recommendations')
        conn.exec_driver_sql(f'ANALYZE "{schema}".similar_items')
    return newest


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/recsys_test")
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--top-k", type=int, default=20)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--versions", type=int, default=365)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--keep", action="store_true", help="keep the schema (its name is printed)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    schema = "bench_ui_" + uuid.uuid4().hex[:8]
    cfg = RecsysConfig.from_mapping({"warehouse": {"output_schema": schema, "source_schema": schema}})
    writer = create_engine(args.url)
    with writer.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        started = time.monotonic()
        fill(writer, cfg, users=args.users, top_k=args.top_k, items=args.items, versions=args.versions)
        log.info("filled schema %s in %.0fs", schema, time.monotonic() - started)
        reader = insights.create_reader_engine(args.url, output_schema=schema)
        rng = random.Random(1)
        user = lambda: f"u{rng.randrange(args.users):07d}"  # noqa: E731
        item = lambda: f"i{rng.randrange(args.items):06d}"  # noqa: E731
        cases = {
            "GET /api/users/{id}/recommendations": lambda: lookups.user_recommendations(reader, cfg, user()),
            "GET /api/items/{id}/similar": lambda: lookups.item_neighbours(reader, cfg, item()),
            "GET /api/registry (50 versions)": lambda: insights.registry_timeline(reader, cfg),
            "GET /api/metrics (300 points)": lambda: insights.metric_history(reader, cfg),
            "GET /api/validation": lambda: insights.validation_summary(reader, cfg),
            "GET /api/publication": lambda: insights.latest_publication(reader, cfg),
        }
        for fn in cases.values():  # warm the pool and the caches once
            fn()
        print(f"\n{args.users * args.top_k:,} recommendation rows; {args.repeat} calls each (ms)")
        print(f"{'endpoint':42} {'p50':>7} {'p95':>7} {'max':>7}")
        for name, fn in cases.items():
            ms = sorted(timed(fn, args.repeat))
            p95 = ms[int(0.95 * (len(ms) - 1))]
            print(f"{name:42} {statistics.median(ms):7.1f} {p95:7.1f} {ms[-1]:7.1f}")
        reader.dispose()
    finally:
        if not args.keep:
            with writer.begin() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        writer.dispose()


if __name__ == "__main__":
    main()
