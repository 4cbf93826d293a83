"""Hourly refresh: re-score only the users with new behaviour into the latest publication.

No training. The champion that made the latest publication scores every user with an item event in
``[since, end)``, where ``since`` is the later of the refresh interval's start and the end of the
publication's data (midnight of its as-of date: older events are already in it). Each such user's
history is rebuilt from ``window.history_days`` before the interval up to ``end``, so the refreshed
rows are what the nightly publish would have written with tonight's events included.

The rows are written in one transaction: stage them (PostgreSQL: a temporary table loaded with
``COPY``), delete those users' rows of that as-of date, insert the staged rows and adjust the
publication's ``users``/``rows`` counts. A reader sees every refreshed user's old rows or new rows,
never a mix, and the publication row always matches its rows. Rerunning a refresh for the same
interval rewrites the same users with the same recommendations.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa

from recsys_tasks.config import RecsysConfig
from recsys_tasks.data.sequences import EVENT_COLUMNS, ITEM_COLUMNS
from recsys_tasks.sqlfiles import load_sql, split_statements, statement
from recsys_tasks.stages.context import RunContext
from recsys_tasks.timeutil import as_date, day_start, utc

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RefreshResult:
    """What one refresh did; ``skipped`` says why it wrote nothing (``None`` when it wrote)."""

    as_of: str | None
    model_version: str | None
    since: str | None
    end: str
    users: int = 0
    rows: int = 0
    replaced_rows: int = 0
    new_users: int = 0
    seconds: float = 0.0
    skipped: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)



def read_active_histories(
    engine: sa.Engine, config: RecsysConfig, *, history_start: datetime, since: datetime, end: datetime
) -> pd.DataFrame:
    """Canonical events in ``[history_start, end)`` of the users with an item event in ``[since, end)``."""
    from recsys_tasks.data.snapshot import EVENTS_SCHEMA, to_arrow
    from recsys_tasks.data.warehouse import bind_timestamp, check_source_tables, table_ref

    cfg = config.warehouse
    check_source_tables(engine, cfg)
    sql = load_sql(
        "select_refresh_events",
        dialect=engine.dialect.name,
        events=table_ref(cfg.source_schema, cfg.events_table),
        **{c: cfg.event_column(c) for c in EVENT_COLUMNS},
    )
    params = {k: bind_timestamp(engine, v) for k, v in (("history_start", history_start), ("since", since), ("end", end))}
    with engine.connect() as conn:
        frame = pd.read_sql_query(sa.text(sql), conn, params=params)
    return to_arrow(frame, EVENTS_SCHEMA, label="events").to_pandas()


def read_catalogue(engine: sa.Engine, config: RecsysConfig, end: datetime) -> pd.DataFrame:
    """The canonical item catalogue as known at ``end``."""
    from recsys_tasks.data.snapshot import ITEMS_SCHEMA, to_arrow
    from recsys_tasks.data.warehouse import bind_timestamp, table_ref

    cfg = config.warehouse
    sql = load_sql(
        "select_items",
        dialect=engine.dialect.name,
        items=table_ref(cfg.source_schema, cfg.items_table),
        **{c: cfg.item_column(c) for c in ITEM_COLUMNS},
    )
    with engine.connect() as conn:
        frame = pd.read_sql_query(sa.text(sql), conn, params={"end": bind_timestamp(engine, end)})
    return to_arrow(frame, ITEMS_SCHEMA, label="items").to_pandas()


def refresh_publication(
    engine: sa.Engine,
    config: RecsysConfig,
    *,
    start: datetime,
    end: datetime,
    run_id: str,
) -> RefreshResult:
    """Re-score the users with item events in ``[start, end)`` into the latest publication."""
    from recsys_tasks.data.warehouse import ensure_output_schema
    from recsys_tasks.registry import get_champion
    from recsys_tasks.serving.ranking import champion_rows
    from recsys_tasks.serving.recommender import load_recommender

    started = time.monotonic()
    start, end = utc(start), utc(end)
    schema = config.warehouse.output_schema
    ensure_output_schema(engine, schema)
    with engine.connect() as conn:
        latest = conn.execute(statement("select_latest_publication", schema=schema)).first()
    if latest is None:
        return _skip(end, "there is no publication yet; the nightly recsys_retrain run writes the first one")
    as_of = as_date(latest.as_of)
    published_until = day_start(as_of)
    since = max(start, published_until)
    if since >= end:
        return _skip(end, f"the publication of {as_of} already covers events before {published_until:%Y-%m-%d %H:%M}", as_of=as_of)
    champion = get_champion(engine, schema)
    if champion is None or champion.model_version != latest.model_version:
        # One publication is one model's output: a new champion publishes through recsys_retrain.
        return _skip(
            end,
            f"the publication of {as_of} was made by {latest.model_version} but the champion is "
            f"{champion.model_version if champion else 'none'}; the next recsys_retrain publish uses the new champion",
            as_of=as_of,
        )
    history_start = start - timedelta(days=config.window.history_days)
    events = read_active_histories(engine, config, history_start=history_start, since=since, end=end)
    if events.empty:
        return _skip(end, f"no user has item events in [{since:%Y-%m-%d %H:%M}, {end:%Y-%m-%d %H:%M})", as_of=as_of, since=since)
    recommender = load_recommender(champion.model_dir, device=config.train.device)
    k = min(int(latest.top_k), len(recommender.vocab) - 1)
    # The nightly publish's path, rules included; trending counts come from the refreshed users' events.
    rows = champion_rows(
        recommender, events, read_catalogue(engine, config, end), users=sorted(set(events["user_id"].astype(str))),
        config=config.publish, k=k, as_of=as_of, run_id=run_id, model_version=champion.model_version,
    )
    written = _replace_rows(engine, schema, rows, as_of=as_of, model_version=champion.model_version)
    if written is None:
        return _skip(end, f"the publication of {as_of} changed while refreshing; the next refresh retries", as_of=as_of, since=since)
    n_rows, n_users, old_rows, old_users = written
    result = RefreshResult(
        as_of=as_of.isoformat(),
        model_version=champion.model_version,
        since=since.isoformat(),
        end=end.isoformat(),
        users=n_users,
        rows=n_rows,
        replaced_rows=old_rows,
        new_users=n_users - old_users,
        seconds=round(time.monotonic() - started, 3),
    )
    log.info(
        "refreshed %d users (%d new to the publication) of the publication of %s with %s: %d rows in %.1fs",
        n_users, n_users - old_users, as_of, champion.model_version, n_rows, result.seconds,
    )
    return result


def _skip(end: datetime, reason: str, *, as_of: date | None = None, since: datetime | None = None) -> RefreshResult:
    log.info("refresh skipped: %s", reason)
    return RefreshResult(
        as_of=as_of.isoformat() if as_of else None,
        model_version=None,
        since=since.isoformat() if since else None,
        end=end.isoformat(),
        skipped=reason,
    )


def _replace_rows(
    engine: sa.Engine, schema: str, rows: Any, *, as_of: date, model_version: str, chunk_rows: int = 50_000
) -> tuple[int, int, int, int] | None:
    """Replace the staged users' rows of ``as_of`` in one transaction; ``None`` if the publication changed."""
    dialect = engine.dialect.name
    day = as_of.isoformat()
    with engine.begin() as conn:
        current = conn.execute(statement("select_publication_for_refresh", dialect=dialect, schema=schema), {"as_of": day}).first()
        if current is None or current.model_version != model_version:
            return None
        for stmt in split_statements(load_sql("create_refresh_stage", dialect=dialect, schema=schema)):
            conn.exec_driver_sql(stmt)
        n_rows, users = 0, set()
        if dialect == "postgresql":
            with conn.connection.driver_connection.cursor() as cur, cur.copy(load_sql("copy_refresh_stage", dialect=dialect)) as copy:
                for row in rows:
                    copy.write_row(row)
                    n_rows += 1
                    users.add(row[1])
        else:
            from recsys_tasks.data.publication import ROW_COLUMNS, portable_params

            insert = statement("insert_refresh_stage")
            batch: list[dict[str, Any]] = []
            for row in rows:
                batch.append(portable_params(ROW_COLUMNS, row))
                n_rows += 1
                users.add(row[1])
                if len(batch) >= chunk_rows:
                    conn.execute(insert, batch)
                    batch = []
            if batch:
                conn.execute(insert, batch)
        old = conn.execute(statement("count_refreshed_rows", schema=schema), {"as_of": day}).one()
        conn.execute(statement("delete_refreshed_rows", schema=schema), {"as_of": day})
        conn.execute(statement("insert_refreshed_rows", schema=schema))
        conn.execute(
            statement("update_publication_counts", schema=schema),
            {"as_of": day, "users_delta": len(users) - int(old.n_users), "rows_delta": n_rows - int(old.n_rows)},
        )
        if dialect != "postgresql":
            conn.exec_driver_sql(load_sql("drop_refresh_stage", dialect=dialect))
    return n_rows, len(users), int(old.n_rows), int(old.n_users)


def run(ctx: RunContext) -> dict[str, Any]:
    """Re-score users with events in the run's interval into the latest publication (no training)."""
    from recsys_tasks.stages.refresh import refresh_publication

    return refresh_publication(ctx.engine, ctx.config, start=ctx.interval_start, end=ctx.interval_end, run_id=ctx.run_id).to_dict()

