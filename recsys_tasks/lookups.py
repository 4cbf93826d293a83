"""Read-only lookups of one user or one item for people: a user's published top-K beside their
recent events, an item's reach and neighbours, and the publications there are to pick from.

The page-wide views (registry, metrics, validation) and the shared machinery (id checks, named
errors, the read-only engine, ``sql/ui_*.sql`` loading) are in :mod:`recsys_tasks.insights`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, time, timedelta, timezone
from typing import Any

import sqlalchemy as sa

from recsys_tasks.config import RecsysConfig
from recsys_tasks.data.source_tables import bind_timestamp
from recsys_tasks.data.warehouse import table_ref
from recsys_tasks.insights import (
    NotAvailable,
    NotFound,
    as_of_text,
    check_date,
    check_id,
    check_limit,
    fetch_rows,
    latest_publication,
    output_sql,
    records,
)
from recsys_tasks.timeutil import as_date, iso_or_none

#: How many days of a user's events before a publication's cutoff the user view reads (the events
#: table is indexed by time, not by user, in the warehouse contract: the window bounds the scan).
EVENT_DAYS = 30


def _same(value: Any) -> Any:
    return value


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def score_kind(reason: str | None) -> str:
    """How a published score reads, from the reason the publisher gave (``serving.ranking._reasons``).

    ``trending``: the item's interaction count (cold-start lists); ``new_item``: a new item placed in
    a slot, carrying the model score of the position it took; ``model``: the model's logit.
    """
    text = (reason or "").strip().lower()
    if text.startswith("trending "):
        return "trending"
    if text.startswith("new in ") or text == "new for you":
        return "new_item"
    return "model"


_ITEM = {"item_id": _same, "title": _same, "category": _same}
_RECOMMENDED = {"rank": int, **_ITEM, "score": float, "reason": _same, "model_version": _same}
_SIMILAR = {"rank": int, **_ITEM, "score": float, "model_version": _same}
_EVENT = {
    "event_ts": iso_or_none, "event_type": _same, **_ITEM, "value": _float_or_none, "query": _same,
}
_PUBLICATION = {
    "as_of": as_of_text, "run_id": _same, "model_version": _same, "users": _same, "rows": _same, "top_k": _same,
    "published_at": iso_or_none,
}


def _item_identifiers(cfg: RecsysConfig) -> dict[str, str]:
    wh = cfg.warehouse
    return {
        "items": table_ref(wh.source_schema, wh.items_table),
        "item_id": wh.item_column("item_id"),
        "title": wh.item_column("title"),
        "category": wh.item_column("category"),
    }


def publications(engine: sa.Engine, cfg: RecsysConfig, *, limit: int = 60) -> dict[str, Any]:
    """The newest publications, newest first (the as-of dates a user view can show)."""
    check_limit(limit, maximum=1000)
    rows = fetch_rows(engine, output_sql("ui_select_publications", cfg, engine), {"limit": limit})
    return {"publications": records(rows, _PUBLICATION)}


def user_recommendations(
    engine: sa.Engine, cfg: RecsysConfig, user_id: str, *, as_of: str | None = None
) -> dict[str, Any]:
    """A user's published top-K (newest publication unless ``as_of``) with titles, scores, their kind and reasons."""
    check_id(user_id, kind="user")
    publication = latest_publication(engine, cfg, as_of=as_of)
    if publication is None:
        where = f"for {as_of}" if as_of else "yet"
        raise NotFound(f"there is no publication {where}; the recsys_retrain DAG publishes one per as-of date")
    stmt = output_sql("ui_select_user_recommendations", cfg, engine, **_item_identifiers(cfg))
    rows = fetch_rows(engine, stmt, {"as_of": publication["as_of"], "user_id": user_id})
    if not rows:
        raise NotFound(
            f"user {user_id!r} has no recommendations in the publication of {publication['as_of']} "
            "(unknown user, or no history before that date)"
        )
    items = [{**r, "score_kind": score_kind(r["reason"])} for r in records(rows, _RECOMMENDED)]
    return {"user_id": user_id, "publication": publication, "items": items}


def user_events(
    engine: sa.Engine, cfg: RecsysConfig, user_id: str, *, as_of: str | None = None, limit: int = 20
) -> dict[str, Any]:
    """A user's newest events in the ``EVENT_DAYS`` before the cutoff of the publication of ``as_of``
    (the newest by default): the history its recommendations were made from.

    The events table is the source's: when the output connection cannot read it, the answer is an
    empty list with a ``message`` saying so, not an error.
    """
    check_id(user_id, kind="user")
    check_limit(limit, maximum=200)
    publication = latest_publication(engine, cfg, as_of=as_of)
    if publication is None:
        where = f"for {as_of}" if as_of else "yet"
        raise NotFound(f"there is no publication {where}; the recsys_retrain DAG publishes one per as-of date")
    end = datetime.combine(as_date(publication["as_of"]), time(), tzinfo=timezone.utc)  # the run's data cutoff
    start = end - timedelta(days=EVENT_DAYS)
    wh = cfg.warehouse
    columns = {f"ev_{c}": wh.event_column(c) for c in ("event_ts", "event_type", "item_id", "user_id", "value", "query")}
    stmt = output_sql(
        "ui_select_user_events", cfg, engine,
        events=table_ref(wh.source_schema, wh.events_table), **columns, **_item_identifiers(cfg),
    )
    params = {"user_id": user_id, "start": bind_timestamp(engine, start), "end": bind_timestamp(engine, end), "limit": limit}
    out: dict[str, Any] = {
        "user_id": user_id, "as_of": publication["as_of"], "since": start.date().isoformat(), "events": [], "message": None,
    }
    try:
        out["events"] = records(fetch_rows(engine, stmt, params), _EVENT)
    except NotAvailable as exc:
        out["message"] = f"the user's events are not readable through the output connection: {exc}"
        return out
    if not out["events"]:
        out["message"] = f"no events of {user_id!r} in the {EVENT_DAYS} days before {publication['as_of']}"
    return out


def item_neighbours(engine: sa.Engine, cfg: RecsysConfig, item_id: str, *, limit: int = 20) -> dict[str, Any]:
    """An item's catalogue row, its reach in the newest publication and its similar items."""
    check_id(item_id, kind="item")
    check_limit(limit, maximum=200)
    found = fetch_rows(engine, output_sql("ui_select_item", cfg, engine, **_item_identifiers(cfg)), {"item_id": item_id})
    publication = latest_publication(engine, cfg)
    reach = None
    if publication is not None:
        counted = fetch_rows(
            engine,
            output_sql("ui_count_item_recommendations", cfg, engine),
            {"as_of": publication["as_of"], "item_id": item_id},
        )[0]
        reach = {"as_of": publication["as_of"], "users": int(counted["users"]), "best_rank": counted["best_rank"]}
    if not found and not (reach and reach["users"]):
        raise NotFound(f"item {item_id!r} is neither in the catalogue nor in the newest publication")
    item = records(found[:1], _ITEM)[0] if found else {"item_id": item_id, "title": None, "category": None}
    return {"item": item, "in_publication": reach, **_similar_items(engine, cfg, item_id, limit=limit)}


def _similar_items(engine: sa.Engine, cfg: RecsysConfig, item_id: str, *, limit: int) -> dict[str, Any]:
    """``similar``, ``similar_as_of`` and a ``message`` saying why the list is empty, if it is."""
    out: dict[str, Any] = {"similar": [], "similar_as_of": None, "message": None}
    if not sa.inspect(engine).has_table("similar_items", schema=cfg.warehouse.output_schema):
        out["message"] = (
            f"similar items are not available: table {cfg.warehouse.output_schema}.similar_items does not "
            "exist yet (a publication that computes item neighbours creates it)"
        )
        return out
    latest = fetch_rows(engine, output_sql("ui_select_similar_as_of", cfg, engine), {})
    as_of = as_of_text(latest[0]["as_of"]) if latest else None
    if as_of is None:
        out["message"] = "similar items are not available: the similar_items table is empty"
        return out
    rows = fetch_rows(
        engine,
        output_sql("ui_select_similar_items", cfg, engine, **_item_identifiers(cfg)),
        {"as_of": as_of, "item_id": item_id, "limit": limit},
    )
    out["similar_as_of"] = as_of
    out["similar"] = [{**r, "score_kind": "similarity"} for r in records(rows, _SIMILAR)]
    if not rows:
        out["message"] = f"item {item_id!r} has no similar items in the table of {as_of}"
    return out


__all__: Sequence[str] = [
    "EVENT_DAYS",
    "item_neighbours",
    "publications",
    "score_kind",
    "user_events",
    "user_recommendations",
]
