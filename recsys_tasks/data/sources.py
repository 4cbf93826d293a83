"""The warehouse source tables: their DDL and a bulk load of canonical events and items (``data.writer``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import pandas as pd
import sqlalchemy as sa

from recsys_tasks.config import WarehouseConfig
from recsys_tasks.data.sequences import EVENT_COLUMNS, ITEM_COLUMNS
from recsys_tasks.data.source_tables import MYSQL_FAMILY
from recsys_tasks.data.writer import Target, has_copy, write_frame
from recsys_tasks.sqlfiles import load_sql, split_statements, statement

logger = logging.getLogger(__name__)


class SynthDataError(ValueError):
    """Frames handed to ``load`` do not have the canonical columns."""


#: Bulk-load targets of the source tables (``sql/{copy,insert}_source_{events,items}``), with the
#: contract's column types.
EVENTS_TARGET = Target(
    "source_events", EVENT_COLUMNS, ("text", "text", "text", "text", "timestamptz", "float8", "text", "text")
)
ITEMS_TARGET = Target("source_items", ITEM_COLUMNS, ("text", "text", "text", "timestamptz"))


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
        for ddl in _ddl(engine.dialect.name, warehouse):
            conn.exec_driver_sql(ddl)


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
    reader sees the old rows or all the new ones. On PostgreSQL the tables must have the contract's
    column types (``sql/schema/create_source_tables``): binary COPY sends typed values. Tables can be
    created on PostgreSQL, SQLite, DuckDB, MySQL and MariaDB (there in a UTC session, so that
    ``TIMESTAMP`` columns store the instants given).
    """
    _require_columns(events, EVENT_COLUMNS, "events")
    _require_columns(items, ITEM_COLUMNS, "items")
    dialect = engine.dialect.name
    ids = source_table_identifiers(warehouse, dialect=dialect)
    began = time.perf_counter()
    with engine.begin() as conn:
        if dialect in MYSQL_FAMILY:
            conn.execute(statement("set_time_zone_utc", dialect="mysql"))
        if create:
            for ddl in _ddl(dialect, warehouse):
                conn.exec_driver_sql(ddl)
        if replace:
            text = load_sql("empty_source_tables", dialect=dialect, events=ids["events"], items=ids["items"])
            for stmt in split_statements(text):
                conn.exec_driver_sql(stmt)
        item_ids = {"items": ids["items"], **{c: warehouse.item_column(c) for c in ITEM_COLUMNS}}
        event_ids = {"events": ids["events"], **{c: warehouse.event_column(c) for c in EVENT_COLUMNS}}
        write_frame(conn, ITEMS_TARGET, items, ids=item_ids, chunk_rows=warehouse.chunk_rows)
        write_frame(conn, EVENTS_TARGET, events, ids=event_ids, chunk_rows=warehouse.chunk_rows)
        how = "COPY" if has_copy(conn) else "executemany"
    logger.info(
        "loaded %d events and %d items into %s.%s / %s (%s, %s) in %.1f s",
        len(events), len(items), warehouse.source_schema or "<default>", warehouse.events_table,
        warehouse.items_table, dialect, how, time.perf_counter() - began,
    )
    return len(events)


def _ddl(dialect: str, warehouse: WarehouseConfig) -> list[str]:
    ids = source_table_identifiers(warehouse, dialect=dialect)
    return split_statements(load_sql("schema/create_source_tables", dialect=dialect, **ids))


def _require_columns(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SynthDataError(f"{what} frame lacks the canonical columns {missing}; it needs {list(columns)}")


