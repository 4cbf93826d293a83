"""The SQL warehouse: engines, connection URLs and our output schema (``source_tables`` checks the source).

The library never reads Airflow: the DAG layer resolves the source and output Connections through
their provider hooks and turns each into a SQLAlchemy URL (``connection_url``) that it hands here.

SQLite has no schemas, so on SQLite our output schema is a second database file attached under the
schema's name (``<warehouse>.<schema>.db`` next to the warehouse file). The same SQL
(``recsys.recommendations``) then runs on both dialects, and the user's source file stays untouched.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from recsys_tasks.sqlfiles import quote_identifier

log = logging.getLogger(__name__)


class WarehouseError(RuntimeError):
    """The warehouse cannot be read as configured; the message names the table, column or connection."""


#: SQLSTATEs that mean "connecting failed" or "not allowed", which the user fixes in the connection or
#: with a GRANT: they become a WarehouseError that names host, database and role (never the password).
_CONNECTION_STATES = {"08000", "08001", "08003", "08004", "08006", "28000", "28P01", "3D000", "57P01", "57P03"}
_PRIVILEGE_STATES = {"42501"}
_TIMEOUT_STATES = {"57014", "55P03"}  # statement / lock timeout


def create_engine(
    url: str | sa.URL,
    *,
    output_schema: str | None = "recsys",
    connect_timeout_s: float | None = 10.0,
    statement_timeout_s: float | None = None,
    **kwargs: Any,
) -> sa.Engine:
    """A SQLAlchemy engine that fails fast and clearly.

    Connecting gives up after ``connect_timeout_s``; on PostgreSQL every statement is cancelled
    after ``statement_timeout_s`` (None: no limit). Connection, permission and timeout failures are
    raised as :class:`WarehouseError` naming host, database and role. On SQLite the output schema
    is attached as its own database file (``output_schema=None``: nothing is attached, for an
    engine that only reads the source).
    """
    url = sa.engine.make_url(url)
    connect_args = dict(kwargs.pop("connect_args", {}))
    if url.get_backend_name() == "postgresql" and url.get_driver_name() in ("psycopg", "psycopg2"):
        # connect_args replace the URL's query parameters of the same name: a connect_timeout or
        # options the connection sets (its libpq extras arrive in the query) must survive ours.
        if connect_timeout_s and "connect_timeout" not in url.query:
            connect_args.setdefault("connect_timeout", max(1, round(connect_timeout_s)))
        timeout = f"-c statement_timeout={round(statement_timeout_s * 1000)}" if statement_timeout_s else None
        options = [o for o in (*_query_values(url, "options"), connect_args.get("options"), timeout) if o]
        if options:  # the connection's first: a later -c of the same setting wins
            connect_args["options"] = " ".join(options)
    engine = sa.create_engine(url, connect_args=connect_args, **kwargs)
    _raise_warehouse_errors(engine)
    if engine.dialect.name == "sqlite":
        database = engine.url.database
        if database and database != ":memory:":
            path = Path(database)
            attach_path = str(path.with_name(f"{path.stem}.{output_schema}.db"))
        else:
            attach_path = ":memory:"

        @sa.event.listens_for(engine, "connect")
        def _attach(dbapi_conn: Any, _record: Any) -> None:  # pragma: no branch - tiny hook
            # The warehouse-side user shard of sql/select_events_shard.sqlite.sql (SQLite has no md5).
            dbapi_conn.create_function("recsys_user_shard", 2, _user_shard, deterministic=True)
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA busy_timeout = 30000")
            if output_schema:  # a source-only engine attaches nothing (and creates no file)
                cursor.execute(f"ATTACH DATABASE ? AS \"{output_schema}\"", (attach_path,))
            cursor.close()

    return engine


def _user_shard(user_id: str | None, shards: int) -> int | None:
    from recsys_tasks.data.shards import user_hash

    return None if user_id is None else user_hash(user_id) % int(shards)


def _query_values(url: sa.URL, key: str) -> list[str]:
    value = url.query.get(key)
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _raise_warehouse_errors(engine: sa.Engine) -> None:
    """Turn connection, permission and timeout failures of ``engine`` into ``WarehouseError``s."""

    @sa.event.listens_for(engine, "handle_error")
    def _named(context: Any) -> Exception | None:
        original = context.original_exception
        state = getattr(original, "sqlstate", None)
        connecting = context.connection is None or context.is_disconnect
        if state in _PRIVILEGE_STATES:
            what = "is not allowed to do this"
            fix = (
                "Grant the missing privilege to this role (docs/operations.md, 'Database roles and privileges' "
                "lists what the pipeline needs), or use a connection with a role that has it."
            )
        elif state in _TIMEOUT_STATES:
            what = "gave up waiting"
            fix = "A statement or lock wait ran past its timeout: retry later, or raise warehouse.statement_timeout_s."
        elif state in _CONNECTION_STATES or (connecting and isinstance(context.sqlalchemy_exception, sa.exc.OperationalError)):
            what = "could not be reached or refused the login"
            fix = "Check the connection's host, port, database and credentials, and that the server is up."
        else:
            return None
        detail = str(original).strip().splitlines()[0] if str(original).strip() else type(original).__name__
        return WarehouseError(f"the warehouse {where(engine)} {what}: {detail}. {fix}")


def where(engine: sa.Engine) -> str:
    """``host:port/database as role`` of ``engine``, for messages (never the password)."""
    url = engine.url
    if url.get_backend_name() == "sqlite":
        return f"sqlite file {url.database or ':memory:'}"
    host = f"{url.host or 'localhost'}{f':{url.port}' if url.port else ''}"
    return f"{host}/{url.database or ''} (role {url.username or '<default>'})"


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


#: libpq connection parameters that ``PostgresHook.get_conn`` passes on from a connection's extra and
#: a SQLAlchemy URL can carry in its query (host, port, database and role come from the fields).
LIBPQ_EXTRAS = frozenset({
    "application_name", "channel_binding", "client_encoding", "connect_timeout", "fallback_application_name",
    "gssdelegation", "gssencmode", "gsslib", "keepalives", "keepalives_count", "keepalives_idle",
    "keepalives_interval", "krbsrvname", "load_balance_hosts", "options", "passfile", "require_auth",
    "requirepeer", "service", "ssl_max_protocol_version", "ssl_min_protocol_version", "sslcert", "sslcertmode",
    "sslcompression", "sslcrl", "sslcrldir", "sslkey", "sslnegotiation", "sslpassword", "sslrootcert", "sslsni",
    "sslmode", "target_session_attrs", "tcp_user_timeout",
})

#: Dialects our output schema has DDL and SQL for; the source may be any dialect SQLAlchemy speaks.
OUTPUT_DIALECTS = ("postgresql", "sqlite")


def with_libpq_extras(url: str | sa.URL, extra: Mapping[str, Any] | None) -> str:
    """``url`` with the libpq parameters of a PostgreSQL connection's extra (``sslmode``,
    ``sslrootcert``, ``application_name``, ...) added to its query, unless the URL already sets them.

    A non-PostgreSQL URL is returned unchanged. The result holds the password: never log it.
    """
    url = sa.engine.make_url(url)
    if url.get_backend_name() == "postgresql":
        added = {
            key: _libpq_value(value)
            for key, value in (extra or {}).items()
            if key in LIBPQ_EXTRAS and key not in url.query and value is not None and value != ""
        }
        url = url.update_query_dict(added) if added else url
    return url.render_as_string(hide_password=False)


def _libpq_value(value: Any) -> str:
    if isinstance(value, bool):  # JSON true/false; libpq wants 1/0
        return "1" if value else "0"
    return str(value)


def connection_url(conn: Any, *, hook_url: str | sa.URL | None = None) -> str:
    """The SQLAlchemy URL of an Airflow Connection (duck-typed: the library never imports Airflow).

    ``hook_url`` is the ``sqlalchemy_url`` of the connection's provider hook when it has one (the DAG
    layer asks the hook: it applies ``sqlalchemy_scheme``, ``sqlalchemy_query`` and IAM tokens);
    without one the URL is built from the fields (:func:`url_from_connection_fields`). An explicit
    ``extra.sqlalchemy_url`` always wins. For PostgreSQL the libpq extras the hook's own connections
    honour (TLS files and mode, timeouts, ``options``, ...) are carried into the URL's query.
    """
    extra = conn.extra_dejson or {}
    if extra.get("sqlalchemy_url"):
        return str(extra["sqlalchemy_url"])
    url = hook_url if hook_url is not None else url_from_connection_fields(conn)
    return with_libpq_extras(url, extra)


def check_output_url(url: str | sa.URL) -> None:
    """Raise ``WarehouseError`` unless ``url`` is a dialect our output schema can be written to."""
    try:
        backend = sa.engine.make_url(url).get_backend_name()
    except sa.exc.ArgumentError:
        raise WarehouseError(
            "the output connection's URL cannot be parsed; it must be a PostgreSQL or SQLite SQLAlchemy URL "
            "(check the connection, or --url / RECSYS_WAREHOUSE_URL)"
        ) from None
    if backend not in OUTPUT_DIALECTS:
        raise WarehouseError(
            f"the output connection is a {backend} database, but the output schema (registry, evaluations, "
            f"publications) can only be written to {' or '.join(OUTPUT_DIALECTS)}. Point RECSYS_OUTPUT_CONN_ID "
            "(default RECSYS_WAREHOUSE_CONN_ID) at a PostgreSQL or SQLite database; the source "
            "(RECSYS_SOURCE_CONN_ID) may be any database SQLAlchemy supports."
        )


def describe(engine: sa.Engine) -> str:
    """The engine's URL with the password hidden, for messages."""
    return engine.url.render_as_string(hide_password=True)


def table_ref(schema: str | None, table: str) -> str:
    """``schema.table`` or ``table``, ready for ``load_sql`` identifier substitution."""
    return f"{schema}.{table}" if schema else table


def ensure_output_schema(engine: sa.Engine, schema: str) -> bool:
    """Create or upgrade our output schema to the newest migration this code ships (``data.migrations``).

    When the schema is current this is one SELECT of its version table and takes no lock a reader
    could wait on, so a role without DDL rights runs it. Otherwise the migrations run (``CREATE OR
    REPLACE VIEW``, ``CREATE INDEX``: locks readers queue behind) in one transaction, serialised
    between concurrent first runs. Returns whether a migration ran.
    """
    from recsys_tasks.data.migrations import current_revision, head_revision, upgrade_output_schema

    if current_revision(engine, schema) == head_revision():
        return False
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:s))"), {"s": f"recsys-ddl-{schema}"})
            # Only create the schema when it is missing: CREATE SCHEMA IF NOT EXISTS needs CREATE on the
            # database even when the schema exists, which a least-privileged pipeline role lacks.
            if conn.execute(sa.text("SELECT 1 FROM pg_namespace WHERE nspname = :s"), {"s": schema}).first() is None:
                conn.execute(sa.text(f"CREATE SCHEMA {quote_identifier(schema, key='warehouse.output_schema')}"))
        return upgrade_output_schema(conn, schema)  # False: another run upgraded it while we waited
