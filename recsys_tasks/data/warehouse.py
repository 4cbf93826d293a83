"""The SQL warehouse: engines, our output schema, and streaming extraction of one run's events.

The library never reads Airflow: the DAG layer turns the ``recsys_warehouse`` Connection into a
SQLAlchemy URL (``url_from_connection``) and hands it here.

SQLite has no schemas, so on SQLite our output schema is a second database file attached under the
schema's name (``<warehouse>.<schema>.db`` next to the warehouse file). The same SQL
(``recsys.recommendations``) then runs on both dialects, and the user's source file stays untouched.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from recsys_tasks.config import WarehouseConfig
from recsys_tasks.data.sequences import EVENT_COLUMNS, ITEM_COLUMNS
from recsys_tasks.sqlfiles import load_sql, split_statements
from recsys_tasks.timeutil import iso, utc

log = logging.getLogger(__name__)



class WarehouseError(RuntimeError):
    """The warehouse cannot be read as configured; the message names the table, column or connection."""


def create_engine(url: str | sa.URL, *, output_schema: str = "recsys", **kwargs: Any) -> sa.Engine:
    """A SQLAlchemy engine; on SQLite the output schema is attached as its own database file."""
    engine = sa.create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        database = engine.url.database
        if database and database != ":memory:":
            path = Path(database)
            attach_path = str(path.with_name(f"{path.stem}.{output_schema}.db"))
        else:
            attach_path = ":memory:"

        @sa.event.listens_for(engine, "connect")
        def _attach(dbapi_conn: Any, _record: Any) -> None:  # pragma: no branch - tiny hook
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA busy_timeout = 30000")
            cursor.execute(f"ATTACH DATABASE ? AS \"{output_schema}\"", (attach_path,))
            cursor.close()

    return engine


def url_from_connection(
    *,
    conn_type: str | None,
    host: str | None = None,
    login: str | None = None,
    password: str | None = None,
    port: int | None = None,
    schema: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """A SQLAlchemy URL from the fields of an Airflow Connection.

    ``extra.sqlalchemy_url`` wins when present (any dialect SQLAlchemy speaks). Otherwise
    ``postgres``/``postgresql`` connections use psycopg 3 and ``sqlite`` connections use ``host``
    as the database file path.
    """
    extra = extra or {}
    if extra.get("sqlalchemy_url"):
        return str(extra["sqlalchemy_url"])
    kind = (conn_type or "").lower()
    if kind in ("postgres", "postgresql"):
        return sa.URL.create(
            "postgresql+psycopg",
            username=login or None,
            password=password or None,
            host=host or None,
            port=port or None,
            database=schema or None,
        ).render_as_string(hide_password=False)
    if kind == "sqlite":
        if not (host or schema):
            raise WarehouseError("the sqlite recsys_warehouse connection has no host: set host to the database file path")
        return f"sqlite:///{host or schema}"
    raise WarehouseError(
        f"connection type {conn_type!r} is not supported directly; set extra "
        '{"sqlalchemy_url": "<dialect+driver://...>"} on the recsys_warehouse connection'
    )


def url_from_connection_fields(conn: Any) -> str:
    """:func:`url_from_connection` for any object with an Airflow Connection's attributes
    (``conn_type``, ``host``, ``login``, ``password``, ``port``, ``schema``, ``extra_dejson``).
    Duck-typed, so the library still never imports Airflow."""
    return url_from_connection(
        conn_type=conn.conn_type,
        host=conn.host,
        login=conn.login,
        password=conn.password,
        port=conn.port,
        schema=conn.schema,
        extra=conn.extra_dejson,
    )


def describe(engine: sa.Engine) -> str:
    """The engine's URL with the password hidden, for messages."""
    return engine.url.render_as_string(hide_password=True)


def table_ref(schema: str | None, table: str) -> str:
    """``schema.table`` or ``table``, ready for ``load_sql`` identifier substitution."""
    return f"{schema}.{table}" if schema else table


def ensure_output_schema(engine: sa.Engine, schema: str) -> None:
    """Create our output schema and tables if they do not exist (idempotent)."""
    dialect = engine.dialect.name
    script = load_sql("schema/create_output_tables", dialect=dialect, schema=schema)
    with engine.begin() as conn:
        if dialect == "postgresql":
            # Concurrent first runs must not race on CREATE SCHEMA.
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:s))"), {"s": f"recsys-ddl-{schema}"})
            conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        for statement in split_statements(script):
            conn.exec_driver_sql(statement)


def check_source_tables(engine: sa.Engine, cfg: WarehouseConfig) -> None:
    """Raise ``WarehouseError`` naming the table or column when the source does not match the config."""
    try:
        inspector = sa.inspect(engine)
    except sa.exc.OperationalError as exc:
        raise WarehouseError(
            f"cannot connect to the warehouse {describe(engine)}: {exc.orig}. Check the recsys_warehouse "
            "connection (host, port, database, credentials)."
        ) from exc
    for table, mapping in (
        (cfg.events_table, {c: cfg.event_column(c) for c in EVENT_COLUMNS}),
        (cfg.items_table, {c: cfg.item_column(c) for c in ITEM_COLUMNS}),
    ):
        where = table_ref(cfg.source_schema, table)
        if not inspector.has_table(table, schema=cfg.source_schema):
            raise WarehouseError(
                f"table {where} does not exist in the warehouse {describe(engine)}. Create it (see "
                "sql/schema/create_source_tables.*.sql) or point warehouse.events_table / "
                "warehouse.items_table at your table or view."
            )
        present = {col["name"] for col in inspector.get_columns(table, schema=cfg.source_schema)}
        missing = {canon: src for canon, src in mapping.items() if src not in present}
        if missing:
            listing = ", ".join(f"{src} (for {canon})" for canon, src in sorted(missing.items()))
            raise WarehouseError(
                f"table {where} in {describe(engine)} lacks column(s) {listing}. Add them or map your "
                "own names in warehouse.event_columns / warehouse.item_columns."
            )


def bind_timestamp(engine: sa.Engine, value: datetime) -> Any:
    """A timestamp as a bound parameter the dialect compares correctly with stored values."""
    return iso(value) if engine.dialect.name == "sqlite" else utc(value)


