"""Publish per-user top-K recommendations for one as-of date, atomically and idempotently.

Rows stream from batch inference into a staging table (PostgreSQL: ``COPY FROM STDIN`` through
psycopg 3; other databases: chunked ``executemany``). Then, in one transaction, the staging table
replaces the as-of date's rows (PostgreSQL: detach/drop the old partition, attach the new one;
SQLite: delete + insert) and the ``publications`` row is upserted. A reader of
``latest_recommendations`` sees the old complete set until commit and the new complete set after;
a publish killed before commit leaves the previous publication untouched.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any, Protocol

import numpy as np
import sqlalchemy as sa

from recsys_tasks.data import EVENT_TYPE_IDS, ItemVocab, SequenceData
from recsys_tasks.registry import iso
from recsys_tasks.sqlfiles import load_sql, split_statements

log = logging.getLogger(__name__)

ROW_COLUMNS = ("as_of", "user_id", "rank", "item_id", "score", "model_version", "run_id", "reason", "generated_at")
_VERBS = {
    EVENT_TYPE_IDS["view"]: "viewed",
    EVENT_TYPE_IDS["click"]: "clicked",
    EVENT_TYPE_IDS["add_to_cart"]: "added to your cart",
    EVENT_TYPE_IDS["purchase"]: "bought",
    EVENT_TYPE_IDS["rate"]: "rated",
}


class PublishError(RuntimeError):
    """A publication could not be written; the previous publication is unchanged."""


class Recommender(Protocol):
    vocab: ItemVocab

    def recommend(
        self,
        histories: SequenceData,
        *,
        k: int,
        exclude: Sequence[Iterable[int]] | None = None,
        batch_users: int = 4096,
    ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]: ...


@dataclass(frozen=True)
class Publication:
    """What one publish wrote."""

    as_of: date
    model_version: str
    users: int
    rows: int
    seconds: float


def exclusions(histories: SequenceData, event_types: Iterable[str]) -> list[set[int]]:
    """Per user, the item indices they had an event of one of ``event_types`` with (e.g. purchases)."""
    ids = {EVENT_TYPE_IDS[t] for t in event_types}
    if not ids:
        return [set() for _ in histories.user_ids]
    wanted = np.array(sorted(ids))
    return [set(items[np.isin(kinds, wanted)].tolist()) for items, kinds in zip(histories.items, histories.event_types, strict=True)]


def recommendation_rows(
    recommender: Recommender,
    histories: SequenceData,
    *,
    k: int,
    exclude: Sequence[set[int]] | None,
    as_of: date,
    run_id: str,
    model_version: str,
    titles: Mapping[str, str],
    batch_users: int = 4096,
    generated_at: datetime | None = None,
) -> Iterator[tuple[Any, ...]]:
    """Rows of ``ROW_COLUMNS`` for every user in ``histories``, streamed chunk by chunk."""
    stamp = iso(generated_at or datetime.now(timezone.utc))
    day = as_of.isoformat()
    vocab = recommender.vocab
    for offset, top, scores in recommender.recommend(histories, k=k, exclude=exclude, batch_users=batch_users):
        for row in range(top.shape[0]):
            u = offset + row
            user = histories.user_ids[u]
            reason = _reason(histories.items[u], histories.event_types[u], vocab, titles)
            # A user with fewer than k eligible items gets index 0 (padding, -inf) after the real ones;
            # padding is not an item (decoding it would wrap around to the vocabulary's last item).
            real = top[row] > 0
            items = vocab.decode(top[row][real])
            for rank, (item, score) in enumerate(zip(items, scores[row][real].tolist(), strict=True), start=1):
                yield (day, user, rank, item, float(score), model_version, run_id, reason, stamp)


def _reason(items: np.ndarray, kinds: np.ndarray, vocab: ItemVocab, titles: Mapping[str, str]) -> str:
    if len(items) == 0:
        return "trending now"
    last_item = vocab.decode([items[-1]])[0]
    title = titles.get(last_item, last_item)
    return f"because you {_VERBS.get(int(kinds[-1]), 'viewed')} {title}"[:200]


def publish(
    engine: sa.Engine,
    schema: str,
    rows: Iterable[tuple[Any, ...]],
    *,
    as_of: date,
    run_id: str,
    model_version: str,
    top_k: int,
    chunk_rows: int = 50_000,
) -> Publication:
    """Load ``rows`` into staging and swap them in as the publication of ``as_of``."""
    started = time.monotonic()
    stage = f"recommendations_stage_{as_of:%Y%m%d}"
    dialect = engine.dialect.name
    with engine.begin() as conn:
        conn.execute(sa.text(load_sql("drop_recommendations_stage", schema=schema, stage=stage)))
        conn.execute(sa.text(load_sql("create_recommendations_stage", dialect=dialect, schema=schema, stage=stage)))
    try:
        if dialect == "postgresql":
            count, users = _copy_postgres(engine, schema, stage, rows)
        else:
            count, users = _insert_portable(engine, schema, stage, rows, chunk_rows)
        _swap(engine, schema, stage, as_of=as_of, run_id=run_id, model_version=model_version, users=users, rows=count, top_k=top_k)
    except BaseException:
        # The published set is untouched; the leftover stage is dropped here or by the next run.
        try:
            with engine.begin() as conn:
                conn.execute(sa.text(load_sql("drop_recommendations_stage", schema=schema, stage=stage)))
        except sa.exc.SQLAlchemyError:  # pragma: no cover - best effort cleanup
            log.warning("could not drop staging table %s.%s; the next publish drops it", schema, stage)
        raise
    seconds = time.monotonic() - started
    log.info("published %d rows for %d users as of %s (model %s) in %.1fs", count, users, as_of, model_version, seconds)
    return Publication(as_of=as_of, model_version=model_version, users=users, rows=count, seconds=seconds)


def _progress(count: int, started: float, last: float) -> float:
    now = time.monotonic()
    if now - last > 10:
        log.info("publishing: %d rows staged (%.0f rows/s)", count, count / max(now - started, 1e-9))
        return now
    return last


def _copy_postgres(engine: sa.Engine, schema: str, stage: str, rows: Iterable[tuple[Any, ...]]) -> tuple[int, int]:
    sql = load_sql("copy_recommendations_stage", dialect="postgresql", schema=schema, stage=stage)
    count, users, last_user = 0, 0, None
    started = last = time.monotonic()
    raw = engine.raw_connection()
    try:
        pg = raw.driver_connection
        with pg.cursor() as cur, cur.copy(sql) as copy:
            for row in rows:
                copy.write_row(row)
                count += 1
                if row[1] != last_user:
                    users, last_user = users + 1, row[1]
                if count % 100_000 == 0:
                    last = _progress(count, started, last)
        pg.commit()
    finally:
        raw.close()
    return count, users


def _insert_portable(
    engine: sa.Engine, schema: str, stage: str, rows: Iterable[tuple[Any, ...]], chunk_rows: int
) -> tuple[int, int]:
    sql = sa.text(load_sql("insert_recommendations_stage", schema=schema, stage=stage))
    count, users, last_user, batch = 0, 0, None, []
    started = last = time.monotonic()
    with engine.begin() as conn:
        for row in rows:
            batch.append(dict(zip(ROW_COLUMNS, row, strict=True)))
            count += 1
            if row[1] != last_user:
                users, last_user = users + 1, row[1]
            if len(batch) >= chunk_rows:
                conn.execute(sql, batch)
                batch = []
                last = _progress(count, started, last)
        if batch:
            conn.execute(sql, batch)
    return count, users


def _swap(
    engine: sa.Engine,
    schema: str,
    stage: str,
    *,
    as_of: date,
    run_id: str,
    model_version: str,
    users: int,
    rows: int,
    top_k: int,
) -> None:
    day = as_of.isoformat()
    publication = {
        "as_of": day,
        "run_id": run_id,
        "model_version": model_version,
        "users": users,
        "rows": rows,
        "top_k": top_k,
        "published_at": iso(datetime.now(timezone.utc)),
    }
    if engine.dialect.name == "postgresql":
        partition = f"recommendations_p{as_of:%Y%m%d}"
        names = {"schema": schema, "stage": stage, "partition": partition, "stage_check": f"{stage}_as_of"}
        literals = {"as_of_literal": day}
        with engine.begin() as conn:  # slow part (constraint, index builds) before the swap's locks
            for stmt in split_statements(load_sql("prepare_recommendations_partition", dialect="postgresql", date_literals=literals, **names)):
                conn.exec_driver_sql(stmt)
        with engine.begin() as conn:
            exists = conn.execute(sa.text("SELECT to_regclass(:name)"), {"name": f'"{schema}"."{partition}"'}).scalar()
            if exists:
                for stmt in split_statements(load_sql("detach_recommendations_partition", dialect="postgresql", **names)):
                    conn.exec_driver_sql(stmt)
            for stmt in split_statements(load_sql("swap_recommendations_partition", dialect="postgresql", date_literals=literals, **names)):
                conn.exec_driver_sql(stmt)
            conn.execute(sa.text(load_sql("upsert_publication", schema=schema)), publication)
    else:
        with engine.begin() as conn:
            for stmt in split_statements(load_sql("replace_recommendations", dialect=engine.dialect.name, schema=schema, stage=stage)):
                conn.execute(sa.text(stmt), {"as_of": day})
            conn.execute(sa.text(load_sql("upsert_publication", schema=schema)), publication)
            conn.execute(sa.text(load_sql("drop_recommendations_stage", schema=schema, stage=stage)))
