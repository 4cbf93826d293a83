"""The warehouse's source tables as extraction reads them, from any SQLAlchemy dialect.

Whether a timestamp column holds instants or wall times is decided per dialect, because each
stores time its own way:

- PostgreSQL ``timestamptz`` and DuckDB ``TIMESTAMPTZ`` hold instants; their ``timestamp`` is naive.
- MySQL/MariaDB ``TIMESTAMP`` holds an instant converted through the session's ``time_zone``, which
  :func:`source_connection` fixes at UTC; ``DATETIME`` is naive.
- SQLite has no timestamp type: the contract stores UTC text there.

A naive column is read only when ``warehouse.naive_timestamps_are`` names the zone of its wall times;
the interval's bounds are then bound as wall times of that zone, so the database compares like with like.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from recsys_tasks.config import WarehouseConfig
from recsys_tasks.data.sequences import EVENT_COLUMNS, ITEM_COLUMNS
from recsys_tasks.data.warehouse import WarehouseError, describe, table_ref
from recsys_tasks.sqlfiles import statement
from recsys_tasks.timeutil import iso, utc

#: Canonical timestamp columns of the warehouse contract, whose time zone must be known.
TIMESTAMP_COLUMNS = {"events": "event_ts", "items": "created_at"}
#: Dialect names of MySQL and MariaDB (``mysql+pymysql://`` and ``mariadb+pymysql://`` URLs).
MYSQL_FAMILY = frozenset({"mysql", "mariadb"})


@contextmanager
def source_connection(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection to read the source through, its session set up for the dialect (UTC on MySQL/MariaDB)."""
    with engine.connect() as conn:
        if conn.dialect.name in MYSQL_FAMILY:
            conn.execute(statement("set_time_zone_utc", dialect="mysql"))
        yield conn


def check_source_tables(engine: sa.Engine, cfg: WarehouseConfig) -> dict[str, str | None]:
    """Raise ``WarehouseError`` naming the table or column when the source does not match the config.

    Besides presence, timestamp columns are checked: a ``timestamp without time zone`` (``DATETIME``)
    column is refused unless ``warehouse.naive_timestamps_are`` says which zone its values are in,
    because the database would compare it in its session's time zone and shift the interval.
    Returns, per table kind (``events``, ``items``), that zone when its timestamp column is naive,
    else None: what extraction binds and reads its timestamps in.
    """
    zones: dict[str, str | None] = {}
    for kind, table, mapping in (
        ("events", cfg.events_table, {c: cfg.event_column(c) for c in EVENT_COLUMNS}),
        ("items", cfg.items_table, {c: cfg.item_column(c) for c in ITEM_COLUMNS}),
    ):
        where_table = table_ref(cfg.source_schema, table)
        columns = source_columns(engine, table, schema=cfg.source_schema)
        if columns is None:
            raise WarehouseError(
                f"table {where_table} does not exist in the warehouse {describe(engine)}. Create it (see "
                "sql/schema/create_source_tables.*.sql) or point warehouse.events_table / "
                "warehouse.items_table at your table or view."
            )
        missing = {canon: src for canon, src in mapping.items() if src not in columns}
        if missing:
            listing = ", ".join(f"{src} (for {canon})" for canon, src in sorted(missing.items()))
            raise WarehouseError(
                f"table {where_table} in {describe(engine)} lacks column(s) {listing}. Add them or map your "
                "own names in warehouse.event_columns / warehouse.item_columns."
            )
        ts_column = mapping[TIMESTAMP_COLUMNS[kind]]
        naive = is_naive_timestamp(engine.dialect.name, columns[ts_column])
        if naive and cfg.naive_timestamps_are is None:
            raise WarehouseError(
                f"column {ts_column} of {where_table} is a timestamp without time zone ({columns[ts_column]}), so "
                f"the database would read it in its session's time zone and shift the run's interval. Set "
                "warehouse.naive_timestamps_are to the zone its values are written in (e.g. UTC), or expose a "
                "view that converts it to timestamp with time zone."
            )
        zones[kind] = cfg.naive_timestamps_are if naive else None
    return zones


def source_columns(engine: sa.Engine, table: str, *, schema: str | None) -> dict[str, Any] | None:
    """The columns of a source table or view and their SQLAlchemy types; None when there is no such table."""
    if engine.dialect.name == "duckdb":
        with engine.connect() as conn:
            rows = conn.execute(statement("select_source_columns", dialect="duckdb"), {"schema": schema, "table": table})
            return {name: _duckdb_type(data_type) for name, data_type in rows} or None
    inspector = sa.inspect(engine)
    if not inspector.has_table(table, schema=schema):
        return None
    return {col["name"]: col["type"] for col in inspector.get_columns(table, schema=schema)}


def _duckdb_type(data_type: str) -> sa.types.TypeEngine[Any]:
    if data_type.startswith("TIMESTAMP WITH TIME ZONE"):
        return sa.TIMESTAMP(timezone=True)
    if data_type.startswith("TIMESTAMP"):  # TIMESTAMP, TIMESTAMP_S, _MS, _NS: wall times
        return sa.TIMESTAMP()
    return sa.types.NullType()  # only timestamps are told apart


def is_naive_timestamp(dialect: str, column_type: Any) -> bool:
    """Whether a column of ``column_type`` holds wall times of an unknown zone on ``dialect``."""
    if dialect in MYSQL_FAMILY and isinstance(column_type, sa.TIMESTAMP):
        return False  # an instant, read in the UTC session of source_connection
    # SQLite has no timestamp type: the contract stores UTC text there (README, warehouse contract).
    return isinstance(column_type, sa.DateTime) and not getattr(column_type, "timezone", False)


def bind_timestamp(engine: sa.Engine, value: datetime, *, naive_zone: str | None = None) -> Any:
    """A timestamp as a bound parameter the dialect compares correctly with stored values.

    Against a naive column (``naive_zone`` set) it is the wall time in that zone, without a zone,
    so the database compares like with like whatever its session's time zone. MySQL/MariaDB drivers
    drop a zone, so they get the UTC wall time their UTC session compares ``TIMESTAMP`` columns in.
    """
    if naive_zone is not None:
        from zoneinfo import ZoneInfo

        return utc(value).astimezone(ZoneInfo(naive_zone)).replace(tzinfo=None)
    if engine.dialect.name == "sqlite":
        return iso(value)
    if engine.dialect.name in MYSQL_FAMILY:
        return utc(value).replace(tzinfo=None)
    return utc(value)
