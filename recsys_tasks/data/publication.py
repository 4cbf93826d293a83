"""Write the published tables (per-user top-K recommendations, similar items), atomically and idempotently.

A publish streams its rows into a staging table through the one bulk writer (``data.writer``),
checking them on the way (``data.publish_safety``: finite scores, and for recommendations catalogue
items and full-enough lists). Then, in one transaction, the staging table replaces the as-of date's
rows (PostgreSQL: detach/drop the old partition, attach the new one; SQLite: delete + insert) and the
``publications`` row is upserted. A reader of ``latest_recommendations`` sees the old complete set
until commit and the new complete set after; a publish killed or refused before commit leaves the
previous publication untouched. One run at a time publishes a given table and date, and the swap
waits for long readers instead of making new readers queue behind it (``data.publish_locks``).

An hourly refresh (:func:`replace_user_rows`) rewrites only some users' rows of a publication, in
one transaction that also keeps the publication's counts equal to its rows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import NamedTuple

import sqlalchemy as sa

from recsys_tasks.data.publish_locks import (
    ACCESS_EXCLUSIVE_CONFLICTS,
    ROW_EXCLUSIVE_CONFLICTS,
    SHARE_UPDATE_EXCLUSIVE_CONFLICTS,
    drop_leftover_stages,
    publisher_lock,
    stage_name,
    with_lock_retries,
)
from recsys_tasks.data.publish_safety import (
    ListSpec,
    PublishPolicy,
    check_replaced,
    check_shrink,
    checked_rows,
)
from recsys_tasks.data.writer import Target, write_rows
from recsys_tasks.sqlfiles import load_sql, split_statements, statement
from recsys_tasks.timeutil import now_iso

log = logging.getLogger(__name__)


class RecommendationRow(NamedTuple):
    """One row of ``recommendations``: the ``rank``-th item for ``user_id`` in the publication of ``as_of``."""

    as_of: date
    user_id: str
    rank: int
    item_id: str
    score: float
    model_version: str
    run_id: str
    reason: str | None
    generated_at: datetime


class SimilarItemRow(NamedTuple):
    """One row of ``similar_items``: the ``rank``-th nearest item to ``item_id`` as of ``as_of``."""

    as_of: date
    item_id: str
    rank: int
    similar_item_id: str
    score: float
    model_version: str


_RECOMMENDATION_TYPES = ("date", "text", "int2", "text", "float4", "text", "text", "text", "timestamptz")
_SIMILAR_TYPES = ("date", "text", "int2", "text", "float4", "text")
#: Tables published by stage-and-swap, with the bulk-load target of their staging table.
STAGE_TARGETS: dict[str, Target] = {
    "recommendations": Target("recommendations_stage", RecommendationRow._fields, _RECOMMENDATION_TYPES),
    "similar_items": Target("similar_items_stage", SimilarItemRow._fields, _SIMILAR_TYPES),
}
_REFRESH_STAGE = Target("refresh_stage", RecommendationRow._fields, _RECOMMENDATION_TYPES)


@dataclass(frozen=True)
class Publication:
    """What one publish wrote."""

    as_of: date
    model_version: str
    users: int
    rows: int
    seconds: float
    #: how many times the swap backed off because readers held the table
    lock_waits: int = 0


@dataclass(frozen=True)
class Replaced:
    """What a refresh changed in a publication: rows and users written, and the rows and users they replaced."""

    rows: int
    users: int
    old_rows: int
    old_users: int


def write_publication(
    engine: sa.Engine,
    schema: str,
    rows: Iterable[RecommendationRow],
    *,
    as_of: date,
    run_id: str,
    model_version: str,
    top_k: int,
    spec: ListSpec | None = None,
    policy: PublishPolicy | None = None,
    chunk_rows: int = 50_000,
) -> Publication:
    """Load ``rows`` into staging and swap them in as the publication of ``as_of``.

    Refused (``data.publish_safety``'s errors; nothing is swapped) when a score is not finite, when a
    list breaks ``spec``, or when the publication shrank more than ``policy`` allows.
    """
    started = time.monotonic()
    policy = policy or PublishPolicy.from_config()

    check, record = publication_hooks(schema, as_of=as_of, run_id=run_id, model_version=model_version, top_k=top_k, policy=policy)
    count, users, waits = stage_and_swap(
        engine, schema, "recommendations", checked_rows(rows, spec), as_of=as_of, policy=policy, chunk_rows=chunk_rows,
        before_swap=check, in_swap=record,
    )
    return published(as_of, model_version, count=count, users=users, waits=waits, started=started)


def publication_hooks(
    schema: str, *, as_of: date, run_id: str, model_version: str, top_k: int, policy: PublishPolicy
) -> tuple[SwapHook, SwapHook]:
    """The checks before a publication's swap (shrink) and the ``publications`` row written inside it."""

    def check(conn: sa.Connection, count: int, users: int) -> None:
        check_shrink(conn, schema, as_of=as_of, users=users, rows=count, policy=policy)

    def record(conn: sa.Connection, count: int, users: int) -> None:
        publication = {
            "as_of": as_of.isoformat(),
            "run_id": run_id,
            "model_version": model_version,
            "users": users,
            "rows": count,
            "top_k": top_k,
            "published_at": now_iso(),
        }
        conn.execute(statement("upsert_publication", schema=schema), publication)

    return check, record


def published(as_of: date, model_version: str, *, count: int, users: int, waits: int, started: float) -> Publication:
    """The :class:`Publication` of a finished swap, logged."""
    seconds = time.monotonic() - started
    log.info("published %d rows for %d users as of %s (model %s) in %.1fs", count, users, as_of, model_version, seconds)
    return Publication(as_of=as_of, model_version=model_version, users=users, rows=count, seconds=seconds, lock_waits=waits)


def write_similar_items(
    engine: sa.Engine,
    schema: str,
    rows: Iterable[SimilarItemRow],
    *,
    as_of: date,
    policy: PublishPolicy | None = None,
    chunk_rows: int = 50_000,
) -> tuple[int, int]:
    """Replace ``as_of``'s ``similar_items`` with ``rows`` atomically; return (rows, items)."""
    started = time.monotonic()
    count, items, _ = stage_and_swap(
        engine, schema, "similar_items", checked_rows(rows), as_of=as_of, policy=policy or PublishPolicy.from_config(),
        chunk_rows=chunk_rows,
    )
    log.info("published %d similar-item rows for %d items as of %s in %.1fs", count, items, as_of, time.monotonic() - started)
    return count, items


#: A callback inside a publish: ``(conn, rows, keys)``.
SwapHook = Callable[[sa.Connection, int, int], None]


def stage_and_swap(
    engine: sa.Engine,
    schema: str,
    table: str,
    rows: Iterable[RecommendationRow | SimilarItemRow],
    *,
    as_of: date,
    policy: PublishPolicy,
    chunk_rows: int = 50_000,
    before_swap: SwapHook | None = None,
    in_swap: SwapHook | None = None,
) -> tuple[int, int, int]:
    """Replace ``as_of``'s rows of ``table`` with ``rows`` atomically; return (rows, distinct keys, lock waits).

    ``rows`` arrive grouped by their key (user or item). Under the publisher lock of ``table`` and
    ``as_of``: leftover stages are dropped, ``rows`` are staged, ``before_swap`` may refuse them (it
    raises), and the swap runs with ``in_swap`` inside its transaction (e.g. to record the publication).
    """
    if table not in STAGE_TARGETS:
        raise ValueError(f"unknown published table {table!r}; use one of {sorted(STAGE_TARGETS)}")

    def fill(conn: sa.Connection, ids: dict[str, str]) -> tuple[int, int]:
        counted = KeyCount(rows)
        return write_rows(conn, STAGE_TARGETS[table], counted, ids=ids, chunk_rows=chunk_rows), counted.keys

    return fill_and_swap(engine, schema, table, fill, as_of=as_of, policy=policy, before_swap=before_swap, in_swap=in_swap)


#: Fills a fresh staging table (identifiers ``ids``) inside the given transaction; returns (rows, keys).
StageFill = Callable[[sa.Connection, dict[str, str]], tuple[int, int]]


def fill_and_swap(
    engine: sa.Engine,
    schema: str,
    table: str,
    fill: StageFill,
    *,
    as_of: date,
    policy: PublishPolicy,
    before_swap: SwapHook | None = None,
    in_swap: SwapHook | None = None,
    keep_stages: frozenset[str] = frozenset(),
) -> tuple[int, int, int]:
    """:func:`stage_and_swap` with the staging table filled by ``fill`` (rows streamed, or shards merged).

    ``keep_stages`` are staging tables the leftover sweep must not drop (the shards being merged).
    """
    stage = stage_name(table, as_of)
    ids = {"schema": schema, "stage": stage}
    with publisher_lock(engine, schema, table, as_of, policy) as lock:
        drop_leftover_stages(engine, schema, lock, own=(table, as_of), keep=keep_stages)
        with engine.begin() as conn:
            conn.execute(statement(f"create_{table}_stage", dialect=engine.dialect.name, **ids))
        try:
            with engine.begin() as conn:
                count, keys = fill(conn, ids)
            if before_swap is not None:
                with engine.connect() as conn:
                    before_swap(conn, count, keys)
            waits = _swap(
                engine, schema, table, stage, as_of=as_of, policy=policy,
                in_swap=lambda conn: in_swap(conn, count, keys) if in_swap else None,
            )
        except BaseException:
            # The published set is untouched; the leftover stage is dropped here or by the next run.
            try:
                with engine.begin() as conn:
                    conn.execute(statement("drop_stage", **ids))
            except sa.exc.SQLAlchemyError:  # pragma: no cover - best effort cleanup
                log.warning("could not drop staging table %s.%s; the next publish drops it", schema, stage)
            raise
    return count, keys, waits


def latest_publication(engine: sa.Engine, schema: str) -> sa.Row | None:
    """The newest publication (``as_of``, ``run_id``, ``model_version``, ``users``, ``rows``, ``top_k``), if any."""
    with engine.connect() as conn:
        return conn.execute(statement("select_latest_publication", schema=schema)).first()


def replace_user_rows(
    engine: sa.Engine,
    schema: str,
    rows: Iterable[RecommendationRow],
    *,
    as_of: date,
    model_version: str,
    spec: ListSpec | None = None,
    policy: PublishPolicy | None = None,
    chunk_rows: int = 50_000,
) -> Replaced | None:
    """Replace the rows of the users in ``rows`` in ``as_of``'s publication, in one transaction.

    ``rows`` arrive grouped by user and are checked like a publish's (``spec``; far fewer rows than
    they replace is refused). Returns ``None`` (writing nothing) when that publication is gone or was
    remade by another model than ``model_version`` meanwhile.
    """
    policy = policy or PublishPolicy.from_config()
    dialect = engine.dialect.name
    day = as_of.isoformat()
    with engine.connect() as conn:
        try:
            # Staged in its own transaction on this connection, so a replace that times out on a lock
            # is tried again without scoring or loading the rows twice.
            with conn.begin():
                for stmt in split_statements(load_sql("create_refresh_stage", dialect=dialect, schema=schema)):
                    conn.exec_driver_sql(stmt)
                counted = KeyCount(checked_rows(rows, spec))
                count = write_rows(conn, _REFRESH_STAGE, counted, chunk_rows=chunk_rows)

            def replace(conn: sa.Connection) -> Replaced | None:
                current = conn.execute(statement("select_publication_for_refresh", dialect=dialect, schema=schema), {"as_of": day}).first()
                if current is None or current.model_version != model_version:
                    return None
                old = conn.execute(statement("count_refreshed_rows", schema=schema), {"as_of": day}).one()
                check_replaced(as_of=as_of, rows=count, old_rows=int(old.n_rows), old_users=int(old.n_users), policy=policy)
                conn.execute(statement("delete_refreshed_rows", schema=schema), {"as_of": day})
                conn.execute(statement("insert_refreshed_rows", schema=schema))
                conn.execute(
                    statement("update_publication_counts", schema=schema),
                    {"as_of": day, "users_delta": counted.keys - int(old.n_users), "rows_delta": count - int(old.n_rows)},
                )
                return Replaced(rows=count, users=counted.keys, old_rows=int(old.n_rows), old_users=int(old.n_users))

            replaced, _ = with_lock_retries(
                conn, replace, policy=policy, table=f"{schema}.recommendations", relations=(_quoted(schema, "recommendations"),),
                modes=ROW_EXCLUSIVE_CONFLICTS, refused=f"the refresh of the publication of {day} replaced nothing; its lists are unchanged",
                holder="another run writing to it (a publish or refresh of that date)",
            )
            return replaced
        finally:
            _drop_refresh_stage(conn)


def _drop_refresh_stage(conn: sa.Connection) -> None:
    try:
        if conn.in_transaction():
            conn.rollback()
        conn.exec_driver_sql(load_sql("drop_refresh_stage", dialect=conn.dialect.name))
        conn.commit()
    except sa.exc.SQLAlchemyError:  # pragma: no cover - best effort: the next refresh of this session drops it
        log.warning("could not drop the refresh's staging table; it goes with the session")


class KeyCount:
    """Passes rows through, counting their keys (the second field: user or item; rows arrive grouped by it)."""

    def __init__(self, rows: Iterable[tuple]) -> None:
        self.rows = rows
        self.keys = 0

    def __iter__(self) -> Iterator[tuple]:
        last = None
        for row in self.rows:
            if row[1] != last:
                self.keys, last = self.keys + 1, row[1]
            yield row


def _swap(
    engine: sa.Engine,
    schema: str,
    table: str,
    stage: str,
    *,
    as_of: date,
    policy: PublishPolicy,
    in_swap: Callable[[sa.Connection], None],
) -> int:
    """Swap ``stage`` in as ``as_of``'s rows of ``table``; return how many times it backed off for readers."""
    day = as_of.isoformat()
    if engine.dialect.name != "postgresql":
        with engine.begin() as conn:
            for stmt in split_statements(load_sql(f"replace_{table}", dialect=engine.dialect.name, schema=schema, stage=stage)):
                conn.execute(sa.text(stmt), {"as_of": day})
            in_swap(conn)
            conn.execute(statement("drop_stage", schema=schema, stage=stage))
        return 0
    partition = f"{table}_p{as_of:%Y%m%d}"
    names = {"schema": schema, "stage": stage, "partition": partition, "stage_check": f"{stage}_as_of"}
    literals = {"as_of_literal": day}
    with engine.begin() as conn:  # slow part (constraint, index builds) before the swap's locks
        for stmt in split_statements(load_sql(f"prepare_{table}_partition", dialect="postgresql", date_literals=literals, **names)):
            conn.exec_driver_sql(stmt)
    relations = (_quoted(schema, table), _quoted(schema, partition))

    def swap(conn: sa.Connection) -> None:
        if conn.execute(sa.text("SELECT to_regclass(:name)"), {"name": relations[1]}).scalar():
            for stmt in split_statements(load_sql(f"detach_{table}_partition", dialect="postgresql", **names)):
                conn.exec_driver_sql(stmt)
        for stmt in split_statements(load_sql(f"swap_{table}_partition", dialect="postgresql", date_literals=literals, **names)):
            conn.exec_driver_sql(stmt)
        in_swap(conn)

    with engine.connect() as conn:
        # A republish detaches the date's partition (ACCESS EXCLUSIVE on the table: every reader
        # conflicts); a new date only attaches one (SHARE UPDATE EXCLUSIVE: readers do not).
        republish = conn.execute(sa.text("SELECT to_regclass(:name)"), {"name": relations[1]}).scalar() is not None
        conn.rollback()
        _, waits = with_lock_retries(
            conn, swap, policy=policy, table=f"{schema}.{table}", relations=relations,
            modes=ACCESS_EXCLUSIVE_CONFLICTS if republish else SHARE_UPDATE_EXCLUSIVE_CONFLICTS,
            refused=f"the publication of {day} was not swapped in and the previous publication is unchanged",
        )
    return waits


def _quoted(schema: str, table: str) -> str:
    return f'"{schema}"."{table}"'
