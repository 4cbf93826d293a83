"""Extraction on PostgreSQL by ``COPY (<query>) TO STDOUT``: the server writes CSV, Arrow parses it.

The portable path (``snapshot._stream_to_parquet``) fetches rows as Python objects and converts each
value in pandas. Here no value passes through Python: PostgreSQL formats the rows and Arrow's C++
CSV parser types them (BENCHMARKS.md, 'Extraction throughput').

The Parquet output is the portable path's. A value is printed by the same type output function
whether it is fetched or copied, and Arrow reads that text as psycopg and pandas do, for the column
types :func:`_arrow_types` accepts: text-like, integer and uuid ids (and types psycopg has no loader
for, such as enums, which it also reads as their text); floating, integer and numeric values;
timestamps with and without time zone. A query with another type, or a connection whose client
encoding is not UTF-8, returns None so that the caller fetches rows instead. In CSV, NULL is written
as nothing and an empty string as ``""``, which the parser keeps apart.

PostgreSQL sends COPY data as one message per row, so rows are gathered ``chunk_rows`` at a time and
each chunk becomes one row group: memory is bounded by the chunk, as on the portable path.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import sqlalchemy as sa
from psycopg import pq, sql

from recsys_tasks.data.warehouse import WarehouseError
from recsys_tasks.data.writer import has_copy

log = logging.getLogger(__name__)

#: Execution option (engine or connection): False makes extraction fetch rows even where it could COPY.
COPY_OPTION = "recsys_extract_by_copy"

# These wrap a statement loaded from sql/, so they cannot live there: placeholders in sql/ files only
# take identifiers. ``set_config(..., true)`` lasts to the end of the transaction, like SET LOCAL.
_DESCRIBE = sql.SQL("SELECT * FROM (\n{}\n) AS extracted LIMIT 0")
_COPY = sql.SQL("COPY (\n{}\n) TO STDOUT (FORMAT csv)")
_UTC_ISO = sql.SQL("SELECT set_config('TimeZone', 'UTC', true), set_config('DateStyle', 'ISO', true)")


def _oids(*names: str) -> frozenset[int]:
    return frozenset(psycopg.postgres.types[name].oid for name in names)


_INTEGER_OIDS = _oids("int2", "int4", "int8")
_TEXT_OIDS = _oids("text", "varchar", "bpchar", "name", "uuid") | _INTEGER_OIDS
_FLOAT_OIDS = _oids("float4", "float8", "numeric") | _INTEGER_OIDS
_TIMESTAMPTZ_OIDS, _TIMESTAMP_OIDS = _oids("timestamptz"), _oids("timestamp")
_CSV = pa_csv.ParseOptions(newlines_in_values=True)  # quoted line breaks
_ARROW_COLUMN = re.compile(r"CSV column #(\d+)")


def copy_query(
    conn: sa.Connection,
    query: str,
    params: Mapping[str, Any],
    schema: pa.Schema,
    write: Callable[[pa.Table], None],
    *,
    chunk_rows: int,
    label: str,
    naive_zone: str | None = None,
) -> int | None:
    """Pass the rows of ``query`` to ``write`` as ``schema`` tables of ``chunk_rows`` rows; return how many.

    None, having written nothing, when COPY cannot give exactly what fetching rows gives: not psycopg 3,
    not UTF-8, a column type outside the contract, or ``COPY_OPTION`` off. Naive timestamps are wall
    times in ``naive_zone`` (UTC when None). Driver errors surface as from ``conn.execute``.
    """
    if not (has_copy(conn) and conn.get_execution_options().get(COPY_OPTION, True)):
        return None
    raw = conn.connection.driver_connection
    if raw.info.encoding != "utf-8":
        return None
    with psycopg.ClientCursor(raw) as client:
        compiled = sa.text(query).compile(dialect=conn.dialect)
        literal = sql.SQL(client.mogrify(compiled.string, compiled.construct_params(dict(params))))
    statement = _COPY.format(literal)
    try:
        with raw.transaction(), raw.cursor() as cur:
            cur.execute(_DESCRIBE.format(literal))
            types = _arrow_types(raw, cur.description or [], schema, label)
            if types is None:
                return None
            cur.execute(_UTC_ISO)
            with cur.copy(statement) as copy:
                return _write_chunks(
                    copy, types, schema, write, chunk_rows=chunk_rows, label=label, naive_zone=naive_zone
                )
    except psycopg.Error as exc:
        # COPY bypasses SQLAlchemy's execute; this is how its errors reach the engine's handle_error
        # listeners (warehouse._raise_warehouse_errors) and a broken connection leaves the pool.
        conn._handle_dbapi_exception(exc, statement.as_string(raw), None, None, None)


def _arrow_types(
    raw: psycopg.Connection, description: list[psycopg.Column], schema: pa.Schema, label: str
) -> dict[str, pa.DataType] | None:
    """The type Arrow parses each column as (naive timestamps without zone), or None if COPY is not exact."""
    if [col.name for col in description] != schema.names:
        return None
    types = {}
    for col, field in zip(description, schema, strict=True):
        oid = col.type_code
        if pa.types.is_timestamp(field.type):
            exact = oid in _TIMESTAMPTZ_OIDS | _TIMESTAMP_OIDS
            types[field.name] = pa.timestamp("us") if oid in _TIMESTAMP_OIDS else field.type
        elif pa.types.is_floating(field.type):
            exact, types[field.name] = oid in _FLOAT_OIDS, field.type
        else:  # psycopg reads a type it has no loader for (an enum, citext) as its text, like COPY
            exact = oid in _TEXT_OIDS or raw.adapters.get_loader(oid, pq.Format.TEXT) is None
            types[field.name] = pa.string()
        if not exact:
            type_name = getattr(psycopg.postgres.types.get(oid), "name", f"oid {oid}")
            log.info("reading %s by row fetch: column %s is %s, which COPY does not read exactly",
                     label, col.name, type_name)
            return None
    return types


def _write_chunks(
    copy: psycopg.Copy,
    types: dict[str, pa.DataType],
    schema: pa.Schema,
    write: Callable[[pa.Table], None],
    *,
    chunk_rows: int,
    label: str,
    naive_zone: str | None,
) -> int:
    total, started, last_log = 0, time.monotonic(), time.monotonic()
    for data in _chunks(copy, chunk_rows):
        table = _parse(data, types, schema, label=label, naive_zone=naive_zone)
        write(table)
        total += table.num_rows
        if time.monotonic() - last_log > 10:
            last_log = time.monotonic()
            rate = total / (last_log - started)
            log.info("extracting %s by COPY: %d rows so far (%.0f rows/s)", label, total, rate)
    return total


def _chunks(copy: psycopg.Copy, chunk_rows: int) -> Iterator[bytearray]:
    """The CSV of ``chunk_rows`` rows at a time: PostgreSQL sends COPY data as one message per row."""
    chunk = bytearray()
    for n, row in enumerate(copy, start=1):
        chunk += row  # copied at once: keeping libpq's row buffers until the join took twice as long
        if n % chunk_rows == 0:
            yield chunk
            chunk = bytearray()
    if chunk:
        yield chunk


def _parse(
    data: bytearray, types: dict[str, pa.DataType], schema: pa.Schema, *, label: str, naive_zone: str | None
) -> pa.Table:
    """One chunk of CSV as a ``schema`` table, with what fetching rows does to floats and naive timestamps."""
    read = pa_csv.ReadOptions(column_names=schema.names)
    # NULL is an unquoted empty field; "" (quoted) is the empty string.
    convert = pa_csv.ConvertOptions(
        column_types=types, null_values=[""], strings_can_be_null=True, quoted_strings_can_be_null=False
    )
    try:
        table = pa_csv.read_csv(pa.py_buffer(data), read_options=read, parse_options=_CSV,
                                convert_options=convert)
    except pa.ArrowInvalid as exc:
        found = _ARROW_COLUMN.search(str(exc))
        field = schema.field(int(found.group(1))) if found else None
        what = f"{label} column {field.name!r} cannot be read as {field.type}" if field else label
        raise WarehouseError(
            f"{what}: {exc}. Fix the column type in the warehouse or expose a view that casts it."
        ) from exc
    columns = []
    for field, column in zip(schema, table.columns, strict=True):
        if pa.types.is_floating(field.type):
            # pandas holds NULL as NaN, so a fetched NaN became NULL in Parquet: keep doing so.
            column = pc.if_else(pc.is_nan(column), pa.scalar(None, field.type), column)
        elif pa.types.is_timestamp(column.type) and column.type.tz is None:  # a wall time in naive_zone
            # The repeated hour when clocks go back is its first occurrence; a skipped wall time
            # moves to the end of the gap, as snapshot._utc_column does.
            zone = naive_zone or "UTC"
            local = pc.assume_timezone(column, zone, ambiguous="earliest", nonexistent="latest")
            column = local.cast(field.type)
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=schema)
