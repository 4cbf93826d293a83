"""The one bulk writer: rows into a table, by binary ``COPY`` on PostgreSQL and chunked ``executemany`` elsewhere.

Every bulk load of the project goes through :func:`write_rows`: the staging tables of a publication,
of its similar items and of an hourly refresh, and the warehouse source tables (:func:`write_frame`
turns a frame into typed rows for it). It writes inside the caller's transaction, so the caller
decides what becomes visible together.

On PostgreSQL through psycopg 3, rows go through ``COPY ... FROM STDIN (FORMAT BINARY)``: psycopg
encodes typed values in C and the server skips text parsing, about twice the rate of a text COPY of
the same rows (docs/bench_publish.md). Values must then have their column's Python type (``date``,
aware ``datetime``, ``float``, ``str``). Other databases get chunks of ``executemany``: SQLite, which
has no date or timestamp types, with them bound as the stored ISO text (:func:`recsys_tasks.timeutil.iso`,
text order is time order), every other database with the typed values its driver adapts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from recsys_tasks.sqlfiles import load_sql, statement
from recsys_tasks.timeutil import iso, iso_column

log = logging.getLogger(__name__)

#: PostgreSQL types whose values SQLite stores as ISO text.
_TEMPORAL = frozenset({"date", "timestamptz"})
#: How often (rows) the writers look at the clock to log progress.
_PROGRESS_EVERY = 10_000


@dataclass(frozen=True)
class Target:
    """A table rows are bulk-loaded into.

    ``statement`` names its SQL files: ``copy_<statement>`` (PostgreSQL, ``COPY ... FROM STDIN
    (FORMAT BINARY)``) and ``insert_<statement>`` (``INSERT ... VALUES (:column, ...)``). ``columns``
    are the rows' fields in order and ``pg_types`` their PostgreSQL types, which binary COPY sends.
    """

    statement: str
    columns: tuple[str, ...]
    pg_types: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.columns) != len(self.pg_types):
            raise ValueError(f"{self.statement}: {len(self.columns)} columns but {len(self.pg_types)} types")


def has_copy(conn: sa.Connection) -> bool:
    """Whether ``conn`` loads by COPY: PostgreSQL through psycopg 3 (psycopg2 and others take executemany)."""
    return conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg"


def stores_text_times(conn: sa.Connection) -> bool:
    """Whether ``conn`` stores dates and timestamps as ISO text: SQLite, which has no such types."""
    return conn.dialect.name == "sqlite"


def write_rows(
    conn: sa.Connection,
    target: Target,
    rows: Iterable[Sequence[Any]],
    *,
    ids: Mapping[str, str] | None = None,
    chunk_rows: int = 50_000,
) -> int:
    """Append ``rows`` to ``target`` inside ``conn``'s transaction; return how many were written.

    ``ids`` fills the identifier placeholders of the target's statements (schema, table, columns).
    """
    ids = dict(ids or {})
    progress = _Progress(target.statement)
    if has_copy(conn):
        count = _copy(conn, target, rows, ids, progress)
    else:
        count = _executemany(conn, target, rows, ids, chunk_rows, progress)
    log.debug("wrote %d rows into %s", count, target.statement)
    return count


def write_frame(
    conn: sa.Connection,
    target: Target,
    frame: pd.DataFrame,
    *,
    ids: Mapping[str, str] | None = None,
    chunk_rows: int = 50_000,
) -> int:
    """Append the ``target.columns`` of ``frame`` to ``target`` (:func:`write_rows` of its typed rows)."""
    rows = frame_rows(frame, target, text_times=stores_text_times(conn), chunk_rows=chunk_rows)
    return write_rows(conn, target, rows, ids=ids, chunk_rows=chunk_rows)


def frame_rows(frame: pd.DataFrame, target: Target, *, text_times: bool, chunk_rows: int = 50_000) -> Iterator[tuple[Any, ...]]:
    """The frame's ``target.columns`` as row tuples of the Python values their types take (NULL as ``None``).

    Columns are converted a chunk at a time, vectorised, so memory stays bounded by ``chunk_rows``;
    ``text_times`` gives timestamps as stored ISO text (for executemany) instead of ``datetime``.
    """
    for lo in range(0, len(frame), chunk_rows):
        chunk = frame.iloc[lo : lo + chunk_rows]
        columns = [
            _column_values(chunk[name], pg_type, text_times=text_times)
            for name, pg_type in zip(target.columns, target.pg_types, strict=True)
        ]
        yield from zip(*columns, strict=True)


def _column_values(col: pd.Series, pg_type: str, *, text_times: bool) -> np.ndarray:
    """One column as an object array of the values ``pg_type`` takes, ``None`` for NULL."""
    if pg_type == "timestamptz":
        if text_times:
            return iso_column(col)
        stamps = pd.to_datetime(col, utc=True)  # naive values are taken as UTC
        out = np.array(stamps.dt.to_pydatetime(), dtype=object)
        out[stamps.isna().to_numpy()] = None
        return out
    if pg_type in ("float4", "float8"):
        numbers = col.to_numpy(dtype=np.float64, na_value=np.nan)
        out = numbers.astype(object)
        out[np.isnan(numbers)] = None
        return out
    if pg_type == "text":
        col = col.astype("string")  # ids of any type are written as text
    return col.to_numpy(dtype=object, na_value=None)


def _copy(conn: sa.Connection, target: Target, rows: Iterable[Sequence[Any]], ids: dict[str, str], progress: _Progress) -> int:
    sql = load_sql(f"copy_{target.statement}", dialect="postgresql", **ids)
    count = 0
    # The driver's own cursor joins the transaction SQLAlchemy holds on this connection.
    with conn.connection.driver_connection.cursor() as cur, cur.copy(sql) as copy:
        copy.set_types(list(target.pg_types))
        for row in rows:
            copy.write_row(row)
            count += 1
            if count % _PROGRESS_EVERY == 0:
                progress(count)
    return count


def _executemany(
    conn: sa.Connection,
    target: Target,
    rows: Iterable[Sequence[Any]],
    ids: dict[str, str],
    chunk_rows: int,
    progress: _Progress,
) -> int:
    insert = statement(f"insert_{target.statement}", dialect=conn.dialect.name, **ids)
    columns = target.columns
    text_times = stores_text_times(conn)
    temporal = [i for i, pg_type in enumerate(target.pg_types) if text_times and pg_type in _TEMPORAL]
    count, batch = 0, []
    for row in rows:
        values = list(row)
        for i in temporal:
            if isinstance(values[i], (date, datetime)):
                values[i] = iso(values[i])
        batch.append(dict(zip(columns, values, strict=True)))
        if len(batch) >= chunk_rows:
            conn.execute(insert, batch)
            count += len(batch)
            batch = []
            progress(count)
    if batch:
        conn.execute(insert, batch)
        count += len(batch)
    return count


class _Progress:
    """Logs how far a load got, at most every ``every`` seconds (a person may be waiting on it)."""

    def __init__(self, label: str, every: float = 10.0) -> None:
        self.label = label
        self.every = every
        self.started = self.last = time.monotonic()

    def __call__(self, count: int) -> None:
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            log.info("writing %s: %d rows so far (%.0f rows/s)", self.label, count, count / max(now - self.started, 1e-9))
