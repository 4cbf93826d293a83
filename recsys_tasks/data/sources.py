"""The warehouse source tables: their DDL and a bulk load of canonical events and items (COPY on PostgreSQL)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd
import sqlalchemy as sa

from recsys_tasks.config import WarehouseConfig
from recsys_tasks.data.sequences import EVENT_COLUMNS, ITEM_COLUMNS
from recsys_tasks.sqlfiles import load_sql, split_statements
from recsys_tasks.timeutil import iso_column

logger = logging.getLogger(__name__)


class SynthDataError(ValueError):
    """Frames handed to ``load`` do not have the canonical columns."""





def source_table_identifiers(warehouse: WarehouseConfig, *, dialect: str) -> dict[str, str]:
    """Identifier values for the ``sql/schema/create_source_tables`` placeholders of ``dialect``."""
    schema = warehouse.source_schema
    ts_col = warehouse.event_column("event_ts")
    index = f"{warehouse.events_table}_{ts_col}_idx"[:63]
    qualify = (lambda name: f"{schema}.{name}") if schema else (lambda name: name)
    ids = {
        "events": qualify(warehouse.events_table),
        "items": qualify(warehouse.items_table),
        "events_table": warehouse.events_table,
        # PostgreSQL puts an index in its table's schema and forbids qualifying it; SQLite wants it qualified
        "events_ts_index": qualify(index) if dialect == "sqlite" else index,
    }
    ids.update({f"events_{c}": warehouse.event_column(c) for c in EVENT_COLUMNS})
    ids.update({f"items_{c}": warehouse.item_column(c) for c in ITEM_COLUMNS})
    return ids


def create_source_tables(engine: sa.Engine, *, warehouse: WarehouseConfig = WarehouseConfig()) -> None:
    """Create the warehouse events and items tables (and the event-time index) if they do not exist."""
    with engine.begin() as conn:
        for statement in _ddl(engine.dialect.name, warehouse):
            conn.exec_driver_sql(statement)


def load(
    engine: sa.Engine,
    events: pd.DataFrame,
    items: pd.DataFrame,
    *,
    warehouse: WarehouseConfig = WarehouseConfig(),
    create: bool = True,
    replace: bool = False,
) -> int:
    """Bulk load canonical events and items into the warehouse source tables; return the events loaded.

    Everything (creating, emptying with ``replace=True``, loading) happens in one transaction, so a
    reader sees the old rows or all the new ones.
    """
    _require_columns(events, EVENT_COLUMNS, "events")
    _require_columns(items, ITEM_COLUMNS, "items")
    events, items = events[list(EVENT_COLUMNS)], items[list(ITEM_COLUMNS)]  # COPY/INSERT column order
    dialect = engine.dialect.name
    began = time.perf_counter()
    if dialect == "postgresql" and _driver_has_copy(engine):
        _load_postgresql_copy(engine, events, items, warehouse=warehouse, create=create, replace=replace)
        how = "COPY"
    else:
        _load_executemany(engine, events, items, warehouse=warehouse, create=create, replace=replace)
        how = "executemany"
    logger.info(
        "loaded %d events and %d items into %s.%s / %s (%s, %s) in %.1f s",
        len(events), len(items), warehouse.source_schema or "<default>", warehouse.events_table,
        warehouse.items_table, dialect, how, time.perf_counter() - began,
    )
    return len(events)


def _ddl(dialect: str, warehouse: WarehouseConfig) -> list[str]:
    ids = source_table_identifiers(warehouse, dialect=dialect)
    return split_statements(load_sql("schema/create_source_tables", dialect=dialect, **ids))


def _table_statements(dialect: str, warehouse: WarehouseConfig, verb: str) -> tuple[str, str]:
    ids = source_table_identifiers(warehouse, dialect=dialect)
    ev = {"events": ids["events"], **{c: warehouse.event_column(c) for c in EVENT_COLUMNS}}
    it = {"items": ids["items"], **{c: warehouse.item_column(c) for c in ITEM_COLUMNS}}
    return (
        load_sql(f"{verb}_source_events", dialect=dialect, **ev),
        load_sql(f"{verb}_source_items", dialect=dialect, **it),
    )


def _empty_statements(dialect: str, warehouse: WarehouseConfig) -> list[str]:
    ids = source_table_identifiers(warehouse, dialect=dialect)
    text = load_sql("empty_source_tables", dialect=dialect, events=ids["events"], items=ids["items"])
    return split_statements(text)


def _driver_has_copy(engine: sa.Engine) -> bool:
    return engine.dialect.driver == "psycopg"  # psycopg 3; psycopg2 and others take the portable path


def _load_postgresql_copy(
    engine: sa.Engine,
    events: pd.DataFrame,
    items: pd.DataFrame,
    *,
    warehouse: WarehouseConfig,
    create: bool,
    replace: bool,
) -> None:
    copy_events, copy_items = _table_statements("postgresql", warehouse, "copy")
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cur:
            if create:
                for statement in _ddl("postgresql", warehouse):
                    cur.execute(statement)
            if replace:
                for statement in _empty_statements("postgresql", warehouse):
                    cur.execute(statement)
            for statement, frame in ((copy_items, items), (copy_events, events)):
                with cur.copy(statement) as copy:
                    for block in _copy_text_blocks(frame, warehouse.chunk_rows):
                        copy.write(block)
        raw.commit()
    except BaseException:
        raw.rollback()
        raise
    finally:
        raw.close()


def _load_executemany(
    engine: sa.Engine,
    events: pd.DataFrame,
    items: pd.DataFrame,
    *,
    warehouse: WarehouseConfig,
    create: bool,
    replace: bool,
) -> None:
    dialect = engine.dialect.name
    insert_events, insert_items = _table_statements(dialect, warehouse, "insert")
    with engine.begin() as conn:
        if create:
            for statement in _ddl(dialect, warehouse):
                conn.exec_driver_sql(statement)
        if replace:
            for statement in _empty_statements(dialect, warehouse):
                conn.exec_driver_sql(statement)
        for statement, frame in ((sa.text(insert_items), items), (sa.text(insert_events), events)):
            for records in _records(frame, warehouse.chunk_rows):
                conn.execute(statement, records)


def _chunks(frame: pd.DataFrame, rows: int) -> Iterator[pd.DataFrame]:
    for lo in range(0, len(frame), rows):
        yield frame.iloc[lo : lo + rows]


def _column_values(col: pd.Series) -> np.ndarray:
    """One column as an object array of ``str``/``float``/``None`` (timestamps in the fixed UTC text form)."""
    if _is_timestamp(col):
        return iso_column(col)
    if _is_number(col):
        values = col.to_numpy(dtype=np.float64, na_value=np.nan)
        out = values.astype(object)
        out[np.isnan(values)] = None
        return out
    out = col.to_numpy(dtype=object, na_value=None)
    mask = pd.isna(out)
    if mask.any():
        out[mask] = None
    return out



def _records(frame: pd.DataFrame, rows: int) -> Iterator[list[dict[str, object]]]:
    for chunk in _chunks(frame, rows):
        columns = {name: _column_values(chunk[name]) for name in chunk.columns}
        names = list(columns)
        yield [dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)]


# COPY text format: backslash, and the row/column delimiters, must be escaped; NULL is \N.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def _copy_text_blocks(frame: pd.DataFrame, rows: int) -> Iterator[bytes]:
    """The frame as COPY text-format bytes, ``rows`` rows per block."""
    for chunk in _chunks(frame, rows):
        fields = [_copy_field(chunk[name]) for name in chunk.columns]
        lines = ["\t".join(row) for row in zip(*fields, strict=True)]
        yield ("\n".join(lines) + "\n").encode("utf-8")


def _copy_field(col: pd.Series) -> list[str]:
    """One column in COPY text format: escaped text, shortest round-trip floats, ``\\N`` for NULL."""
    if _is_number(col) or _is_timestamp(col):
        values = _column_values(col)
        return ["\\N" if v is None else (v if isinstance(v, str) else repr(float(v))) for v in values]
    values = _column_values(col)
    return ["\\N" if v is None else str(v).translate(_COPY_ESCAPES) for v in values]


def _is_number(col: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype)


def _is_timestamp(col: pd.Series) -> bool:
    return isinstance(col.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(col.dtype)


def _require_columns(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SynthDataError(f"{what} frame lacks the canonical columns {missing}; it needs {list(columns)}")


