"""Hand-made outputs for the Recommendations UI tests: what is written and what the tests expect.

The output rows are written with the library's own writers (registry, evaluations, publish), the
catalogue with ``sources.load``; the expected values below are what the tests assert on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from recsys_tasks import registry
from recsys_tasks.config import RecsysConfig
from recsys_tasks.data import publication, sources, synth
from recsys_tasks.data.warehouse import ensure_output_schema
from recsys_tasks.modeling import evaluation, promotion
from recsys_tasks.sqlfiles import statement

AS_OF = date(2026, 1, 5)
OLD_AS_OF = date(2026, 1, 4)
ITEMS = {
    "i1": ("Blue Kettle", "kitchen"),
    "i2": ("Red Teapot", "kitchen"),
    "i3": ("Garden Hose", "garden"),
    "i4": ("Desk Lamp", "office"),
}
#: user -> [(item, score, reason)] of the newest publication, best first.
TOP_K = {
    "u1": [("i2", 0.91, "because you viewed Blue Kettle"), ("i3", 0.55, None), ("i4", 0.12, "popular")],
    "user.two@example": [("i1", 0.8, None), ("i9", 0.4, None)],  # i9 is not in the catalogue
    # A cold-start list: trending counts and a new item, not model logits.
    "u3": [("i3", 199.0, "trending in garden"), ("i4", 0.7, "new in office")],
}
#: u1's events: (time, type, item, query), oldest first. The last one is after the cutoff of AS_OF
#: (midnight UTC), so the user view must not show it; the first is more than 30 days before.
U1_EVENTS = [
    ("2025-11-20T08:00:00+00:00", "view", "i4", None),
    ("2026-01-03T09:00:00+00:00", "search", None, "kettle"),
    ("2026-01-03T09:05:00+00:00", "view", "i1", None),
    ("2026-01-04T18:30:00+00:00", "add_to_cart", "i1", None),
    ("2026-01-05T07:00:00+00:00", "purchase", "i1", None),
]


@dataclass(frozen=True)
class Filled:
    """A warehouse with a filled output schema, and the config to read it."""

    engine: sa.Engine  # the read-only engine the plugin would use
    writer: sa.Engine
    cfg: RecsysConfig
    docs_index: Path


def fill(writer: sa.Engine, cfg: RecsysConfig, artifact_root: Path) -> Path:
    schema = cfg.warehouse.output_schema
    ensure_output_schema(writer, schema)
    items = pd.DataFrame(
        [{"item_id": k, "title": t, "category": c, "created_at": pd.Timestamp("2025-12-01", tz="UTC")} for k, (t, c) in ITEMS.items()]
    )
    events = pd.DataFrame(
        [{"event_id": f"e{n}", "user_id": "u1", "item_id": item, "event_type": kind, "event_ts": pd.Timestamp(ts),
          "value": 9.5 if kind in ("add_to_cart", "purchase") else None, "query": query, "session_id": "s1"}
         for n, (ts, kind, item, query) in enumerate(U1_EVENTS)]
        + [{"event_id": "e-other", "user_id": "user.two@example", "item_id": "i2", "event_type": "view",
            "event_ts": pd.Timestamp("2026-01-04T10:00:00+00:00"), "value": None, "query": None, "session_id": "s2"}],
        columns=list(synth.EVENT_COLUMNS),
    )
    events["value"] = events["value"].astype("float64")
    sources.load(writer, events, items, warehouse=cfg.warehouse)

    start, end = datetime(2025, 12, 1, tzinfo=timezone.utc), datetime(2026, 1, 5, tzinfo=timezone.utc)
    common = dict(kind="gpt2", dag_id="recsys_retrain", data_start=start, data_end=end, artifact_uri="file:///m",
                  checksum="x", config={})
    registry.register_model(writer, schema, model_version="m1", parent_version=None, run_id="r1", as_of=OLD_AS_OF,
                            metrics={"ndcg@10": 0.20}, **common)
    registry.promote(writer, schema, "m1", decision="first model beats most-popular")
    registry.register_model(writer, schema, model_version="m2", parent_version="m1", run_id="r2", as_of=AS_OF,
                            metrics={"ndcg@10": 0.25}, **common)
    registry.promote(writer, schema, "m2", decision="ndcg@10 +25% over m1")
    registry.register_model(writer, schema, model_version="m3", parent_version="m2", run_id="r3", as_of=AS_OF,
                            metrics={"ndcg@10": 0.24}, **common)
    registry.set_status(writer, schema, "m3", "rejected", decision="ndcg@10 -4% vs champion m2")
    # A backfill registered last for an older date: the timeline sorts it by as-of, last.
    registry.register_model(writer, schema, model_version="m0", parent_version=None, run_id="backfill__2026-01-03",
                            as_of=date(2026, 1, 3), metrics={"ndcg@10": 0.15}, **common)
    registry.set_status(writer, schema, "m0", "rejected", decision="backfill: " + "long decision text " * 20)
    for run_id, day, role, version, value in [
        ("r1", OLD_AS_OF, "challenger", "m1", 0.20), ("r1", OLD_AS_OF, "baseline", "most_popular", 0.10),
        ("r2", AS_OF, "challenger", "m2", 0.25), ("r2", AS_OF, "champion", "m1", 0.20),
        ("r2", AS_OF, "baseline", "most_popular", 0.11),
        # m3 was judged on r3's holdout, where its champion m2 scored 0.26 (not m2's 0.25 of r2).
        ("r3", AS_OF, "challenger", "m3", 0.24), ("r3", AS_OF, "champion", "m2", 0.26),
        ("r3", AS_OF, "baseline", "most_popular", 0.12),
    ]:
        evaluation.store_evaluation(writer, schema, run_id=run_id, as_of=day, model_version=version, role=role,
                                  metrics={"all": {"ndcg@10": value, "users": 50}, "new_users": {"ndcg@10": 0.01, "users": 3}})
    same_holdout = np.linspace(0.5, 1.5, 50)
    r3 = promotion.compare(
        evaluation.Scores({}, {"ndcg@10": 0.24 * same_holdout}), evaluation.Scores({}, {"ndcg@10": 0.26 * same_holdout}),
        reference_version="m2", reference_role="champion", cfg=cfg.evaluation,
    )
    promotion.store_comparisons(writer, schema, run_id="r3", as_of=AS_OF, challenger="m3", comparisons=[r3])

    stamp = "2026-01-05 03:00:00.000000+00:00"
    generated = datetime(2026, 1, 5, 3, tzinfo=timezone.utc)
    old = [publication.RecommendationRow(OLD_AS_OF, "u1", 1, "i1", 0.5, "m1", "r1", None, generated)]
    publication.write_publication(writer, schema, old, as_of=OLD_AS_OF, run_id="r1", model_version="m1", top_k=3)
    rows = [
        publication.RecommendationRow(AS_OF, user, rank, item, score, "m2", "r2", reason, generated)
        for user, recs in sorted(TOP_K.items())
        for rank, (item, score, reason) in enumerate(recs, start=1)
    ]
    publication.write_publication(writer, schema, rows, as_of=AS_OF, run_id="r2", model_version="m2", top_k=3)
    similar = [publication.SimilarItemRow(AS_OF, "i1", 1, "i2", 0.93, "m2"), publication.SimilarItemRow(AS_OF, "i1", 2, "i3", 0.31, "m2")]
    publication.write_similar_items(writer, schema, similar, as_of=AS_OF)

    docs = artifact_root / "recsys_retrain" / AS_OF.isoformat() / "r2" / "data_docs"
    docs.mkdir(parents=True)
    # As GX writes its pages: assets from CDNs (with subresource integrity), which the app serves locally.
    (docs / "index.html").write_text(
        '<html><head><script src="https://code.jquery.com/jquery-3.7.1.min.js"></script>'
        '<script src="https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js" integrity="sha384-x" '
        'crossorigin="anonymous"></script>'
        '<link rel="stylesheet" href="https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css">'
        "</head><body>Data Docs of r2<p id='jq'></p>"
        "<script>document.getElementById('jq').textContent = typeof $ + ' ' + typeof $.fn.modal;</script></body></html>",
        encoding="utf-8",
    )
    (artifact_root / "models").mkdir()
    (artifact_root / "models" / "secret.txt").write_text("not for the browser", encoding="utf-8")
    results = [
        {"run_id": "r2", "as_of": AS_OF.isoformat(), "suite": "events", "expectation": "expect_column_values_to_not_be_null",
         "column_name": "user_id", "severity": "blocking", "success": True, "observed_value": "0", "details": None,
         "created_at": stamp},
        {"run_id": "r2", "as_of": AS_OF.isoformat(), "suite": "events", "expectation": "expect_table_row_count_to_be_between",
         "column_name": None, "severity": "warning", "success": False, "observed_value": "12", "details": "low volume",
         "created_at": stamp},
        {"run_id": "r2", "as_of": AS_OF.isoformat(), "suite": "events", "expectation": "expect_column_dtype_to_be_canonical",
         "column_name": "event_ts", "severity": "blocking", "success": True, "observed_value": '"datetime64[us, UTC]"',
         "details": "expected a timezone-aware UTC datetime column", "created_at": stamp},
    ]
    results.append(
        {"run_id": "r1", "as_of": OLD_AS_OF.isoformat(), "suite": "events", "expectation": "expect_column_values_to_not_be_null",
         "column_name": "user_id", "severity": "blocking", "success": True,
         "observed_value": '{"unexpected_count": 0, "element_count": 7, "examples": []}', "details": None, "created_at": stamp}
    )
    with writer.begin() as conn:
        conn.execute(statement("insert_validation_result", schema=schema), results)
        conn.execute(
            statement("upsert_validation_run", schema=schema),
            {"run_id": "r1", "as_of": OLD_AS_OF.isoformat(), "interval_events": 7, "success": True, "docs_uri": None,
             "created_at": stamp},
        )
        conn.execute(
            statement("upsert_validation_run", schema=schema),
            {"run_id": "r2", "as_of": AS_OF.isoformat(), "interval_events": 12, "success": True,
             "docs_uri": str(docs / "index.html"), "created_at": stamp},
        )
    return docs / "index.html"


