"""Locks around a publish: one publisher per date, swaps readers never wait on for long, no leftovers.

- :func:`publisher_lock`: concurrent publishers of the same output table and as-of date (a CLI
  rollback, a manual run, a backfill, a second scheduler) are serialised by a session-level
  PostgreSQL advisory lock; the one that does not get it within ``publish.lock_timeout_ms`` fails
  with :class:`PublishInProgress` instead of racing the other for the staging table and the swap.
- :func:`with_lock_retries`: a swap needs locks that conflict with readers (``DETACH PARTITION``
  takes ACCESS EXCLUSIVE on the parent table). While such a request waits for a long analyst query,
  every new reader queues behind it. So a try is made only when no other transaction has held a
  conflicting lock for a whole ``lock_timeout_ms`` (it would likely outlast the try), the try runs
  under ``SET LOCAL lock_timeout``, and a try that times out is rolled back and made again after a
  back-off. When the tries run out, :class:`TableBusy` says so and nothing was changed.
- :func:`drop_leftover_stages`: a publish killed before its swap leaves its staging table; the next
  publish of any date drops every such table whose publisher lock is free.

SQLite (the embedded, single-process warehouse) serialises writers itself: there the publisher lock
is a no-op and a step runs once, in one transaction.
"""

from __future__ import annotations

import logging
import re
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from typing import TypeVar

import sqlalchemy as sa

from recsys_tasks.data.publish_safety import PublishInProgress, PublishPolicy, TableBusy
from recsys_tasks.sqlfiles import statement

log = logging.getLogger(__name__)

T = TypeVar("T")

#: pg_locks modes that conflict with the lock a step takes on the published table (PostgreSQL's
#: conflict table): DETACH/DROP take ACCESS EXCLUSIVE, ATTACH takes SHARE UPDATE EXCLUSIVE on the
#: parent, a refresh's DELETE/INSERT take ROW EXCLUSIVE.
ACCESS_EXCLUSIVE_CONFLICTS = (
    "AccessShareLock", "RowShareLock", "RowExclusiveLock", "ShareUpdateExclusiveLock", "ShareLock",
    "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock",
)
SHARE_UPDATE_EXCLUSIVE_CONFLICTS = ACCESS_EXCLUSIVE_CONFLICTS[3:]
ROW_EXCLUSIVE_CONFLICTS = ACCESS_EXCLUSIVE_CONFLICTS[4:]
#: The staging tables of stage-and-swap publishes; nothing else in our schema has such a name.
#: ``<table>_stage_<YYYYMMDD>``, or a shard's ``<table>_stage_<YYYYMMDD>_<run tag>_<i>of<n>``.
_STAGE = re.compile(r"^(recommendations|similar_items)_stage_(\d{8})(?:_[0-9a-f]{8}_\d+of\d+)?$")
_STAGE_LIKE = r"%\_stage\_%"
_LOCK_NOT_AVAILABLE = "55P03"
_POLL_S = 0.1
_FIRST_BACKOFF_S, _MAX_BACKOFF_S = 0.25, 5.0


def stage_name(table: str, as_of: date) -> str:
    """The staging table of ``table``'s publication of ``as_of``."""
    return f"{table}_stage_{as_of:%Y%m%d}"


def shard_stage_name(table: str, as_of: date, run_id: str, shard: int, shards: int) -> str:
    """The staging table one shard of run ``run_id`` fills for ``table``'s publication of ``as_of``."""
    tag = f"{zlib.crc32(run_id.encode()):08x}"
    return f"{stage_name(table, as_of)}_{tag}_{shard}of{shards}"


def _lock_key(schema: str, table: str, as_of: date) -> dict[str, int]:
    key = zlib.crc32(f"recsys-publish:{schema}.{table}".encode())  # stable across processes, unlike hash()
    return {"key": key - 2**32 if key >= 2**31 else key, "day": int(f"{as_of:%Y%m%d}")}


@contextmanager
def publisher_lock(
    engine: sa.Engine, schema: str, table: str, as_of: date, policy: PublishPolicy
) -> Iterator[sa.Connection | None]:
    """Hold the publisher lock of ``schema.table`` for ``as_of`` over the block (yields its connection;
    ``None`` on SQLite); raise ``PublishInProgress`` if another run holds it past ``lock_timeout_ms``."""
    if engine.dialect.name != "postgresql":
        yield None
        return
    key = _lock_key(schema, table, as_of)
    # Autocommit: the lock belongs to the session, and the session must not idle inside a transaction.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        deadline = time.monotonic() + policy.lock_timeout_ms / 1000
        while not conn.execute(statement("lock_publisher", dialect="postgresql"), key).scalar():
            if time.monotonic() >= deadline:
                raise PublishInProgress(
                    f"another run is publishing {as_of} to {schema} ({table}); this run published nothing and the "
                    f"publication of {as_of} is unchanged. Let that run finish (Airflow UI, or the advisory locks in "
                    "pg_locks), then retry this one if its result is still wanted."
                )
            time.sleep(_POLL_S)
        try:
            yield conn
        finally:
            try:
                conn.execute(statement("unlock_publisher", dialect="postgresql"), key)
            except sa.exc.SQLAlchemyError:  # the session is gone, and its lock with it
                log.warning("could not release the publisher lock of %s.%s %s; it ends with the session", schema, table, as_of)


def drop_leftover_stages(
    engine: sa.Engine, schema: str, lock: sa.Connection | None, *, own: tuple[str, date], keep: frozenset[str] = frozenset()
) -> list[str]:
    """Drop the staging tables of ``schema`` (any published table, any date; shard stages too) no running
    publish owns, except the names in ``keep``.

    ``lock`` is the connection holding our publisher lock (``None`` on SQLite, where one process
    publishes at a time); another date's stage is dropped only if its publisher lock can be taken.
    """
    with engine.connect() as conn:
        names = conn.execute(
            statement("select_stage_tables", dialect=engine.dialect.name, schema=schema), {"schema": schema, "pattern": _STAGE_LIKE}
        ).scalars().all()
    dropped = []
    for name in names:
        match = _STAGE.match(name)
        day = _parse_day(match.group(2)) if match else None
        if match is None or day is None or name in keep:
            continue
        table = match.group(1)
        key = _lock_key(schema, table, day)
        mine = (table, day) == own or lock is None
        if not mine and not lock.execute(statement("lock_publisher", dialect="postgresql"), key).scalar():
            continue  # a live publish of that date is loading it
        try:
            with engine.begin() as conn:
                conn.execute(statement("drop_stage", schema=schema, stage=name))
        finally:
            if not mine:
                lock.execute(statement("unlock_publisher", dialect="postgresql"), key)
        dropped.append(name)
    if dropped:
        log.info("dropped %d staging table(s) left by earlier publishes in %s: %s", len(dropped), schema, ", ".join(dropped))
    return dropped


def _parse_day(digits: str) -> date | None:
    try:
        return datetime.strptime(digits, "%Y%m%d").date()
    except ValueError:
        return None


def with_lock_retries(
    conn: sa.Connection,
    work: Callable[[sa.Connection], T],
    *,
    policy: PublishPolicy,
    table: str,
    relations: Sequence[str],
    modes: Sequence[str],
    refused: str,
    holder: str = "a reader",
) -> tuple[T, int]:
    """``work(conn)`` in one transaction whose lock waits are cut at ``lock_timeout_ms``, tried again after
    a back-off while readers hold ``relations`` (quoted names) in a conflicting ``mode``; returns
    ``(work's result, tries that backed off)``. Raises ``TableBusy`` (naming the likely ``holder`` and
    saying ``refused``) when the tries run out.
    """
    if conn.dialect.name != "postgresql":
        with conn.begin():
            return work(conn), 0
    started, waits = time.monotonic(), 0
    patience = policy.lock_timeout_ms / 1000
    for attempt in range(policy.lock_retries + 1):
        if attempt:
            waits += 1
            time.sleep(min(_FIRST_BACKOFF_S * 2 ** (attempt - 1), _MAX_BACKOFF_S))
        held = _long_holders(conn, relations, modes, patience)
        if held:
            log.info(
                "%s: %d transaction(s) of other sessions (pids %s) have held it for over %.1fs; not queueing readers "
                "behind a lock request (try %d of %d)",
                table, len(held), sorted(pid for pid, _ in held), patience, attempt + 1, policy.lock_retries + 1,
            )
            continue
        try:
            with conn.begin():
                conn.execute(statement("set_lock_timeout", dialect="postgresql"), {"timeout": f"{policy.lock_timeout_ms}ms"})
                return work(conn), waits
        except Exception as exc:  # only a lock timeout is retried; anything else is raised as it is
            if not _lock_timed_out(exc):
                raise
            log.info("%s: a lock wait passed %d ms; try %d of %d rolled back", table, policy.lock_timeout_ms, attempt + 1, policy.lock_retries + 1)
    raise TableBusy(
        f"{holder} held {table} for longer than {time.monotonic() - started:.0f}s ({policy.lock_retries + 1} tries, "
        f"each waiting at most {policy.lock_timeout_ms} ms for its lock): {refused}. Retry later, once the long "
        "queries or open transactions on it have finished (pg_stat_activity lists them), or raise publish.lock_retries."
    )


def _long_holders(conn: sa.Connection, relations: Sequence[str], modes: Sequence[str], patience: float) -> set[tuple[int, str]]:
    """Transactions holding a conflicting lock now and ``patience`` seconds later (a reader's query
    in autocommit is a new transaction each time, so only long ones are in both looks)."""
    first = _holders(conn, relations, modes)
    if not first:
        return first
    time.sleep(patience)
    return first & _holders(conn, relations, modes)


def _holders(conn: sa.Connection, relations: Sequence[str], modes: Sequence[str]) -> set[tuple[int, str]]:
    with conn.begin():
        rows = conn.execute(
            statement("select_lock_holders", dialect="postgresql"), {"relations": list(relations), "modes": list(modes)}
        ).all()
    return {(int(r.pid), str(r.virtualtransaction)) for r in rows}


def _lock_timed_out(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps: the engine may turn it into a ``WarehouseError``) is a lock timeout."""
    seen: BaseException | None = exc
    while seen is not None:
        if getattr(seen, "sqlstate", None) == _LOCK_NOT_AVAILABLE or getattr(getattr(seen, "orig", None), "sqlstate", None) == _LOCK_NOT_AVAILABLE:
            return True
        seen = seen.__cause__ or seen.__context__
    return False
