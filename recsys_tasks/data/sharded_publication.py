"""A publication written by N parallel shard tasks and swapped in by one: still one atomic publication.

Each shard task loads its users' checked rows into its own staging table (bulk COPY, in parallel,
one transaction per shard: a failed or retried shard leaves no half-filled table). The merge task
then, under the publisher lock, checks that every shard's table holds exactly what its task
reported, copies them into the publication's staging table (server-side), and swaps that in the
usual way (``data.publication``): readers see the previous complete publication until commit and
the new complete one after.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa

from recsys_tasks.data.publication import (
    STAGE_TARGETS,
    KeyCount,
    Publication,
    RecommendationRow,
    fill_and_swap,
    publication_hooks,
    published,
)
from recsys_tasks.data.publish_locks import shard_stage_name
from recsys_tasks.data.publish_safety import ListSpec, PublishPolicy, UnsafePublication, checked_rows
from recsys_tasks.data.writer import write_rows
from recsys_tasks.sqlfiles import statement

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StagedShard:
    """What one shard task staged: its position, and the rows and users its table must hold."""

    shard: int
    shards: int
    rows: int
    users: int
    top_k: int
    model_version: str

    def to_dict(self) -> dict[str, int | str]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def stage_shard(
    engine: sa.Engine,
    schema: str,
    rows: Iterable[RecommendationRow],
    *,
    as_of: date,
    run_id: str,
    shard: int,
    shards: int,
    top_k: int,
    model_version: str,
    spec: ListSpec | None = None,
    chunk_rows: int = 50_000,
) -> StagedShard:
    """Load one shard's rows (checked against ``spec``) into its own staging table, replacing a retry's."""
    name = shard_stage_name("recommendations", as_of, run_id, shard, shards)
    ids = {"schema": schema, "stage": name}
    started = time.monotonic()
    counted = KeyCount(checked_rows(rows, spec))
    with engine.begin() as conn:
        conn.execute(statement("drop_stage", **ids))
        conn.execute(statement("create_recommendations_stage", dialect=engine.dialect.name, **ids))
        count = write_rows(conn, STAGE_TARGETS["recommendations"], counted, ids=ids, chunk_rows=chunk_rows)
    log.info("shard %d of %d: staged %d rows for %d users in %.1fs", shard, shards, count, counted.keys, time.monotonic() - started)
    return StagedShard(shard, shards, count, counted.keys, top_k, model_version)


def merge_shards(
    engine: sa.Engine,
    schema: str,
    staged: Sequence[StagedShard],
    *,
    as_of: date,
    run_id: str,
    policy: PublishPolicy,
) -> Publication:
    """Swap the shards' staging tables in as the publication of ``as_of``, atomically; then drop them.

    Refused (``UnsafePublication``; nothing is swapped) when a shard is missing or reported twice,
    the shards disagree on the model or K, or a shard's table does not hold what its task reported.
    """
    started = time.monotonic()
    first = _consistent(staged)
    names = {s.shard: shard_stage_name("recommendations", as_of, run_id, s.shard, s.shards) for s in staged}

    def fill(conn: sa.Connection, ids: dict[str, str]) -> tuple[int, int]:
        for s in sorted(staged, key=lambda s: s.shard):
            found = _counts(conn, schema, names[s.shard])
            if found is None:
                raise UnsafePublication(
                    f"shard {s.shard} of {s.shards}: its staging table {names[s.shard]} is missing (dropped by another "
                    "publish of the same date?); nothing was published. Clear the publish_shard tasks of this run and rerun them."
                )
            if found != (s.rows, s.users):
                raise UnsafePublication(
                    f"shard {s.shard} of {s.shards}: its staging table {names[s.shard]} holds {found[0]} rows for "
                    f"{found[1]} users, but the shard task reported {s.rows} rows for {s.users} users; nothing was "
                    "published. Clear the publish_shard tasks of this run and rerun them."
                )
            conn.execute(statement("insert_stage_from_shard", shard=names[s.shard], **ids))
        return sum(s.rows for s in staged), sum(s.users for s in staged)

    check, record = publication_hooks(
        schema, as_of=as_of, run_id=run_id, model_version=first.model_version, top_k=first.top_k, policy=policy
    )
    count, users, waits = fill_and_swap(
        engine, schema, "recommendations", fill, as_of=as_of, policy=policy, before_swap=check, in_swap=record,
        keep_stages=frozenset(names.values()),
    )
    for name in names.values():
        with engine.begin() as conn:
            conn.execute(statement("drop_stage", schema=schema, stage=name))
    return published(as_of, first.model_version, count=count, users=users, waits=waits, started=started)


def _consistent(staged: Sequence[StagedShard]) -> StagedShard:
    """The first shard, after checking that the shards are 0..N-1 once each, of one model and one K."""
    if not staged:
        raise UnsafePublication("no shard was staged; nothing was published")
    shards = {s.shards for s in staged}
    positions = sorted(s.shard for s in staged)
    if len(shards) != 1 or positions != list(range(next(iter(shards)))):
        raise UnsafePublication(
            f"the staged shards are {positions} of {sorted(shards)}, not each of 0..N-1 once; nothing was published. "
            "Rerun the publish tasks of this run."
        )
    if len({(s.model_version, s.top_k) for s in staged}) != 1:
        raise UnsafePublication(
            f"the shards were ranked by different models or K ({sorted({(s.model_version, s.top_k) for s in staged})}); "
            "nothing was published. Rerun the publish tasks of this run."
        )
    return staged[0]


def _counts(conn: sa.Connection, schema: str, stage: str) -> tuple[int, int] | None:
    """(rows, users) of a shard's staging table, or None when it does not exist."""
    if not sa.inspect(conn).has_table(stage, schema=schema):
        return None
    row = conn.execute(statement("count_stage_rows", schema=schema, stage=stage)).one()
    return int(row.n_rows), int(row.n_users)


__all__ = ["StagedShard", "merge_shards", "stage_shard"]
