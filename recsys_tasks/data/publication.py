"""Write per-user top-K recommendations for one as-of date, atomically and idempotently.

Rows stream from batch inference into a staging table (PostgreSQL: ``COPY FROM STDIN`` through
psycopg 3; other databases: chunked ``executemany``). Then, in one transaction, the staging table
replaces the as-of date's rows (PostgreSQL: detach/drop the old partition, attach the new one;
SQLite: delete + insert) and the ``publications`` row is upserted. A reader of
``latest_recommendations`` sees the old complete set until commit and the new complete set after;
a publish killed before commit leaves the previous publication untouched.

Business rules (``recsys_tasks.rules``) run per chunk of users on the model's top ``k + margin``
candidates: purchased items are excluded, items looked at repeatedly without buying are demoted,
cold-start users get trending items of their category, new items get a slot, an optional category
cap diversifies the list, and every row carries a reason. ``similar_items`` (top-N neighbours per
item by cosine of the champion's item vectors) is published with the same stage-and-swap.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from recsys_tasks.sqlfiles import load_sql, split_statements, statement
from recsys_tasks.timeutil import iso, now_iso

log = logging.getLogger(__name__)

ROW_COLUMNS = ("as_of", "user_id", "rank", "item_id", "score", "model_version", "run_id", "reason", "generated_at")
SIMILAR_COLUMNS = ("as_of", "item_id", "rank", "similar_item_id", "score", "model_version")


@dataclass(frozen=True)
class Publication:
    """What one publish wrote."""

    as_of: date
    model_version: str
    users: int
    rows: int
    seconds: float


def portable_params(columns: Sequence[str], row: Sequence[Any]) -> dict[str, Any]:
    """Bind parameters of one row for databases without COPY: dates and timestamps as ISO text
    (``registry.iso``), so every writer stores them in the same sortable form."""
    return {c: iso(v) if isinstance(v, (date, datetime)) else v for c, v in zip(columns, row, strict=True)}


def write_publication(
    engine: sa.Engine,
    schema: str,
    rows: Iterable[tuple[Any, ...]],
    *,
    as_of: date,
    run_id: str,
    model_version: str,
    top_k: int,
    chunk_rows: int = 50_000,
) -> Publication:
    """Load ``rows`` into staging and swap them in as the publication of ``as_of``."""
    started = time.monotonic()
    day = as_of.isoformat()

    def record(conn: sa.Connection, count: int, users: int) -> None:
        publication = {
            "as_of": day,
            "run_id": run_id,
            "model_version": model_version,
            "users": users,
            "rows": count,
            "top_k": top_k,
            "published_at": now_iso(),
        }
        conn.execute(statement("upsert_publication", schema=schema), publication)

    count, users = stage_and_swap(engine, schema, "recommendations", rows, as_of=as_of, chunk_rows=chunk_rows, in_swap=record)
    seconds = time.monotonic() - started
    log.info("published %d rows for %d users as of %s (model %s) in %.1fs", count, users, as_of, model_version, seconds)
    return Publication(as_of=as_of, model_version=model_version, users=users, rows=count, seconds=seconds)


#: Tables published by stage-and-swap, with their columns (``sql/*_<table>_*`` holds their statements).
TABLES: dict[str, tuple[str, ...]] = {"recommendations": ROW_COLUMNS, "similar_items": SIMILAR_COLUMNS}
#: PostgreSQL types of those columns, for binary COPY.
_PG_TYPES: dict[str, list[str]] = {
    "recommendations": ["date", "text", "int2", "text", "float4", "text", "text", "text", "timestamptz"],
    "similar_items": ["date", "text", "int2", "text", "float4", "text"],
}


def stage_and_swap(
    engine: sa.Engine,
    schema: str,
    table: str,
    rows: Iterable[tuple[Any, ...]],
    *,
    as_of: date,
    chunk_rows: int = 50_000,
    in_swap: Callable[[sa.Connection, int, int], None] | None = None,
) -> tuple[int, int]:
    """Replace ``as_of``'s rows of ``table`` with ``rows`` atomically; return (rows, distinct keys).

    ``rows`` are grouped by their second column (user or item); ``in_swap(conn, rows, keys)`` runs
    inside the swap's transaction (e.g. to record the publication).
    """
    if table not in TABLES:
        raise ValueError(f"unknown published table {table!r}; use one of {sorted(TABLES)}")
    stage = f"{table}_stage_{as_of:%Y%m%d}"
    dialect = engine.dialect.name
    with engine.begin() as conn:
        conn.execute(statement("drop_recommendations_stage", schema=schema, stage=stage))
        conn.execute(statement(f"create_{table}_stage", dialect=dialect, schema=schema, stage=stage))
    try:
        if dialect == "postgresql":
            count, keys = _copy_postgres(engine, schema, table, stage, rows)
        else:
            count, keys = _insert_portable(engine, schema, table, stage, rows, chunk_rows)
        _swap(engine, schema, table, stage, as_of=as_of, in_swap=lambda conn: in_swap(conn, count, keys) if in_swap else None)
    except BaseException:
        # The published set is untouched; the leftover stage is dropped here or by the next run.
        try:
            with engine.begin() as conn:
                conn.execute(statement("drop_recommendations_stage", schema=schema, stage=stage))
        except sa.exc.SQLAlchemyError:  # pragma: no cover - best effort cleanup
            log.warning("could not drop staging table %s.%s; the next publish drops it", schema, stage)
        raise
    return count, keys


def _progress(count: int, started: float, last: float) -> float:
    now = time.monotonic()
    if now - last > 10:
        log.info("publishing: %d rows staged (%.0f rows/s)", count, count / max(now - started, 1e-9))
        return now
    return last


def _copy_postgres(engine: sa.Engine, schema: str, table: str, stage: str, rows: Iterable[tuple[Any, ...]]) -> tuple[int, int]:
    # Binary COPY: psycopg encodes rows in C and the server skips text parsing, so loading runs at
    # about twice the rate of a text COPY of the same rows (docs/bench_publish.md).
    sql = load_sql(f"copy_{table}_stage", dialect="postgresql", schema=schema, stage=stage)
    types = _PG_TYPES[table]
    temporal = [i for i, t in enumerate(types) if t in ("date", "timestamptz")]
    count, users, last_user = 0, 0, None
    started = last = time.monotonic()
    raw = engine.raw_connection()
    try:
        pg = raw.driver_connection
        stream = iter(rows)
        first = next(stream, None)
        if first is not None:
            stream = _chain(first, stream)
            if any(isinstance(first[i], str) for i in temporal):  # ISO text (hand-made rows): parse it
                stream = map(_TemporalParser(temporal), stream)
        with pg.cursor() as cur, cur.copy(sql) as copy:
            copy.set_types(types)
            for row in stream:
                copy.write_row(row)
                count += 1
                if row[1] != last_user:
                    users, last_user = users + 1, row[1]
                if count % 100_000 == 0:
                    last = _progress(count, started, last)
        pg.commit()
    finally:
        raw.close()
    return count, users


def _chain(first: tuple[Any, ...], rest: Iterator[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
    yield first
    yield from rest


class _TemporalParser:
    """Turn ISO date/timestamp text at ``positions`` into date/datetime objects (cached: they repeat)."""

    def __init__(self, positions: Sequence[int]) -> None:
        self.positions = positions
        self.cache: dict[str, Any] = {}

    def __call__(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        out = list(row)
        for i in self.positions:
            value = out[i]
            if isinstance(value, str):
                if value not in self.cache:
                    self.cache[value] = date.fromisoformat(value) if len(value) == 10 else datetime.fromisoformat(value)
                out[i] = self.cache[value]
        return tuple(out)


def _insert_portable(
    engine: sa.Engine, schema: str, table: str, stage: str, rows: Iterable[tuple[Any, ...]], chunk_rows: int
) -> tuple[int, int]:
    sql = statement(f"insert_{table}_stage", schema=schema, stage=stage)
    columns = TABLES[table]
    count, users, last_user, batch = 0, 0, None, []
    started = last = time.monotonic()
    with engine.begin() as conn:
        for row in rows:
            batch.append(portable_params(columns, row))
            count += 1
            if row[1] != last_user:
                users, last_user = users + 1, row[1]
            if len(batch) >= chunk_rows:
                conn.execute(sql, batch)
                batch = []
                last = _progress(count, started, last)
        if batch:
            conn.execute(sql, batch)
    return count, users


def _swap(
    engine: sa.Engine,
    schema: str,
    table: str,
    stage: str,
    *,
    as_of: date,
    in_swap: Callable[[sa.Connection], None],
) -> None:
    day = as_of.isoformat()
    if engine.dialect.name == "postgresql":
        partition = f"{table}_p{as_of:%Y%m%d}"
        names = {"schema": schema, "stage": stage, "partition": partition, "stage_check": f"{stage}_as_of"}
        literals = {"as_of_literal": day}
        with engine.begin() as conn:  # slow part (constraint, index builds) before the swap's locks
            for stmt in split_statements(load_sql(f"prepare_{table}_partition", dialect="postgresql", date_literals=literals, **names)):
                conn.exec_driver_sql(stmt)
        with engine.begin() as conn:
            exists = conn.execute(sa.text("SELECT to_regclass(:name)"), {"name": f'"{schema}"."{partition}"'}).scalar()
            if exists:
                for stmt in split_statements(load_sql(f"detach_{table}_partition", dialect="postgresql", **names)):
                    conn.exec_driver_sql(stmt)
            for stmt in split_statements(load_sql(f"swap_{table}_partition", dialect="postgresql", date_literals=literals, **names)):
                conn.exec_driver_sql(stmt)
            in_swap(conn)
    else:
        with engine.begin() as conn:
            for stmt in split_statements(load_sql(f"replace_{table}", dialect=engine.dialect.name, schema=schema, stage=stage)):
                conn.execute(sa.text(stmt), {"as_of": day})
            in_swap(conn)
            conn.execute(statement("drop_recommendations_stage", schema=schema, stage=stage))



def write_similar_items(
    engine: sa.Engine, schema: str, rows: Iterable[tuple[Any, ...]], *, as_of: date, chunk_rows: int = 50_000
) -> tuple[int, int]:
    """Replace ``as_of``'s ``similar_items`` with ``rows`` atomically; return (rows, items)."""
    started = time.monotonic()
    count, items = stage_and_swap(engine, schema, "similar_items", rows, as_of=as_of, chunk_rows=chunk_rows)
    log.info("published %d similar-item rows for %d items as of %s in %.1fs", count, items, as_of, time.monotonic() - started)
    return count, items
