"""Benchmark of the hourly refresh: N active users re-scored into the latest publication on PostgreSQL.

Loads a synthetic shop into a fresh schema of a PostgreSQL database, registers an (untrained: the
refresh does not care how good it is) champion of the default model size, publishes as of AS_OF
from the events before it, then times ``refresh_publication`` over the day after AS_OF, in which
every user of the shop is active. Prints one JSON line; the schema is dropped at the end.

    .venv/bin/python scripts/benchmark_refresh.py --users 10000
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from recsys_tasks import stages
from recsys_tasks.config import RecsysConfig, to_dict
from recsys_tasks.data import sources, synth
from recsys_tasks.data.sequences import ItemVocab
from recsys_tasks.data.snapshot import extract_interval
from recsys_tasks.data.warehouse import create_engine, ensure_output_schema
from recsys_tasks.modeling.artifacts import build_model, save_model
from recsys_tasks.registry import promote, register_model, store_model
from recsys_tasks.stages.refresh import refresh_publication

AS_OF = datetime(2026, 2, 1, tzinfo=timezone.utc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/recsys_test")
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=2_000)
    parser.add_argument("--days", type=int, default=7, help="days of history before AS_OF")
    parser.add_argument("--top-k", type=int, default=20)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    source = "bench_" + uuid.uuid4().hex[:8]
    output = source + "_out"
    tmp = Path(tempfile.mkdtemp(prefix="recsys-bench-refresh-"))
    config = RecsysConfig.from_mapping(
        {
            "artifact_root": str(tmp / "artifacts"),
            "warehouse": {"source_schema": source, "output_schema": output},
            "window": {"history_days": args.days},
            "model": {"use_item_text": False},
            "train": {"device": "cpu"},
            "publish": {"top_k": args.top_k},
        }
    )
    engine = create_engine(args.url, output_schema=output)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{source}"'))
    try:
        events, items = synth.generate(
            n_users=args.users, n_items=args.items, start=AS_OF - timedelta(days=args.days), end=AS_OF + timedelta(days=1),
            events_per_user_per_day=3.0, seed=1,
        )
        # Every user is active after AS_OF: give each one a view in the refresh window.
        late = events[events["item_id"].notna()].drop_duplicates("user_id").copy()
        late["event_id"] = "late-" + late["user_id"].astype(str)
        late["event_type"] = "view"
        late["event_ts"] = late["event_ts"].map(lambda _: AS_OF + timedelta(hours=12))
        import pandas as pd

        sources.load(engine, pd.concat([events, late], ignore_index=True), items, warehouse=config.warehouse, replace=True)
        ensure_output_schema(engine, output)
        vocab = ItemVocab(sorted(items["item_id"].astype(str)))
        trained = save_model(
            tmp / "trained", kind="transformer", vocab=vocab, popularity=np.arange(len(vocab), dtype=np.float32),
            model=build_model("transformer", config.model, len(vocab)), model_cfg=config.model,
        )
        model_dir, checksum = store_model(trained, Path(config.artifact_root), "m-bench")
        register_model(
            engine, output, model_version="m-bench", parent_version=None, kind="transformer", dag_id="bench", run_id="bench",
            as_of=AS_OF.date(), data_start=AS_OF - timedelta(days=args.days), data_end=AS_OF, artifact_uri=str(model_dir),
            checksum=checksum, config=to_dict(config),
        )
        promote(engine, output, "m-bench", decision="benchmark")
        ctx = stages.context.RunContext("recsys_retrain", "bench", AS_OF - timedelta(days=1), AS_OF, args.url, config)
        snap = extract_interval(engine, config.warehouse, start=ctx.history_start, end=AS_OF, out_dir=tmp / "snapshot")
        t0 = time.monotonic()
        published = stages.publish.run(ctx, str(snap.path))
        publish_s = time.monotonic() - t0
        ctx.dispose()
        t0 = time.monotonic()
        result = refresh_publication(engine, config, start=AS_OF, end=AS_OF + timedelta(days=1), run_id="bench-refresh")
        refresh_s = time.monotonic() - t0
        print(json.dumps({
            "users_in_shop": args.users, "items": args.items, "events": int(len(events) + len(late)),
            "published_users": published["users"], "publish_seconds": round(publish_s, 2),
            "refreshed_users": result.users, "refreshed_rows": result.rows, "refresh_seconds": round(refresh_s, 2),
            "users_per_second": round(result.users / refresh_s), "model": {"hidden_size": config.model.hidden_size, "num_layers": config.model.num_layers, "max_len": config.model.max_len},
        }))
    finally:
        engine.dispose()
        with sa.create_engine(args.url).begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{source}" CASCADE'))
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{output}" CASCADE'))


if __name__ == "__main__":
    main()
