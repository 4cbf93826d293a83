"""Publishing: atomic, idempotent swaps of one as-of date's top-K rows.

Rows are hand-made ``RecommendationRow``s, written to real PostgreSQL (partition swap) and SQLite
(delete + insert) output schemas (the ``output_db`` fixture).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest
import sqlalchemy as sa

from recsys_tasks.data.publication import RecommendationRow, write_publication
from recsys_tasks.data.warehouse import ensure_output_schema
from recsys_tasks.timeutil import as_date, utc

DAY1, DAY2 = date(2026, 2, 1), date(2026, 2, 2)
STAMP = datetime(2026, 2, 2, 3, 0, tzinfo=UTC)


def _rows(as_of: date, users: int, k: int, model: str, *, run: str = "run-1", stamp: datetime = STAMP) -> list[RecommendationRow]:
    return [
        RecommendationRow(
            as_of=as_of, user_id=f"u{u:06d}", rank=r, item_id=f"i{(u + r) % 97}", score=1.0 / r, model_version=model,
            run_id=run, reason="trending now", generated_at=stamp,
        )
        for u in range(users)
        for r in range(1, k + 1)
    ]


def _read(engine: sa.Engine, schema: str, *, view: bool = False) -> list[RecommendationRow]:
    """The stored rows, with dates and timestamps read back from either dialect's form."""
    table = "latest_recommendations" if view else "recommendations"
    cols = ", ".join(RecommendationRow._fields)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f'SELECT {cols} FROM "{schema}".{table} ORDER BY as_of, user_id, rank')).all()
    return [RecommendationRow(*row)._replace(as_of=as_date(row.as_of), generated_at=utc(row.generated_at)) for row in rows]


def _publications(engine: sa.Engine, schema: str) -> list[tuple]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            f'SELECT as_of, run_id, model_version, users, rows, top_k, published_at FROM "{schema}".publications ORDER BY as_of'
        )).all()
    return [tuple(str(v)[:10] if i == 0 else v for i, v in enumerate(row)) for row in rows]


def _stages(engine: sa.Engine, schema: str) -> list[str]:
    names = sa.inspect(engine).get_table_names(schema=schema)
    return [n for n in names if "stage" in n]


def test_publish_writes_rows_publication_and_latest_view(output_db):
    engine, schema = output_db
    first = _rows(DAY1, users=3, k=2, model="m1")
    result = write_publication(engine, schema, iter(first), as_of=DAY1, run_id="run-1", model_version="m1", top_k=2)
    assert (result.as_of, result.model_version, result.users, result.rows) == (DAY1, "m1", 3, 6)
    stored = _read(engine, schema)
    assert stored == first  # every field, dates and timestamps included, reads back as written
    assert [p[:6] for p in _publications(engine, schema)] == [("2026-02-01", "run-1", "m1", 3, 6, 2)]
    assert len(_read(engine, schema, view=True)) == 6

    second = _rows(DAY2, users=2, k=3, model="m2", run="run-2")
    write_publication(engine, schema, iter(second), as_of=DAY2, run_id="run-2", model_version="m2", top_k=3)
    latest = _read(engine, schema, view=True)
    assert len(latest) == 6 and {r.model_version for r in latest} == {"m2"} and {r.as_of for r in latest} == {DAY2}
    assert len(_read(engine, schema)) == 12  # both dates are kept

    # A backfill of the older date replaces that date only; the view still shows the newest as-of.
    backfill = _rows(DAY1, users=1, k=2, model="m0", run="run-0")
    write_publication(engine, schema, iter(backfill), as_of=DAY1, run_id="run-0", model_version="m0", top_k=2)
    assert {r.model_version for r in _read(engine, schema, view=True)} == {"m2"}
    day1 = [r for r in _read(engine, schema) if r.as_of == DAY1]
    assert len(day1) == 2 and {r.model_version for r in day1} == {"m0"}
    assert [p[:6] for p in _publications(engine, schema)] == [
        ("2026-02-01", "run-0", "m0", 1, 2, 2),
        ("2026-02-02", "run-2", "m2", 2, 6, 3),
    ]
    assert _stages(engine, schema) == []


def test_republishing_the_same_rows_gives_the_same_table(output_db):
    engine, schema = output_db
    write_publication(engine, schema, iter(_rows(DAY1, 4, 3, "m1")), as_of=DAY1, run_id="run-1", model_version="m1", top_k=3)
    before_rows, before_pub = _read(engine, schema), _publications(engine, schema)
    again = _rows(DAY1, 4, 3, "m1", stamp=datetime(2026, 2, 2, 4, 0, tzinfo=UTC))  # a retry an hour later
    write_publication(engine, schema, iter(again), as_of=DAY1, run_id="run-1", model_version="m1", top_k=3)
    after_rows, after_pub = _read(engine, schema), _publications(engine, schema)
    assert [r._replace(generated_at=None) for r in after_rows] == [r._replace(generated_at=None) for r in before_rows]
    assert len(after_rows) == 12
    assert [p[:6] for p in after_pub] == [p[:6] for p in before_pub] == [("2026-02-01", "run-1", "m1", 4, 12, 3)]
    assert _stages(engine, schema) == []


def test_a_publish_killed_midway_leaves_the_previous_publication(output_db):
    engine, schema = output_db
    write_publication(engine, schema, iter(_rows(DAY1, 5, 2, "m1")), as_of=DAY1, run_id="run-1", model_version="m1", top_k=2)
    before_rows, before_pub = _read(engine, schema), _publications(engine, schema)

    def dying_rows() -> Iterator[RecommendationRow]:
        for n, row in enumerate(_rows(DAY1, 50, 2, "m2", run="run-2")):
            if n == 37:
                raise KeyboardInterrupt("worker killed")  # a BaseException, like a task being terminated
            yield row

    with pytest.raises(KeyboardInterrupt):
        write_publication(engine, schema, dying_rows(), as_of=DAY1, run_id="run-2", model_version="m2", top_k=2, chunk_rows=10)
    assert _read(engine, schema) == before_rows
    assert _publications(engine, schema) == before_pub
    assert _stages(engine, schema) == []
    # The next attempt goes through.
    write_publication(engine, schema, iter(_rows(DAY1, 50, 2, "m2", run="run-2")), as_of=DAY1, run_id="run-2", model_version="m2", top_k=2)
    assert {r.model_version for r in _read(engine, schema, view=True)} == {"m2"} and len(_read(engine, schema)) == 100


def test_a_reader_sees_the_old_or_the_new_publication_never_a_mix(pg_engine, pg_schema):
    ensure_output_schema(pg_engine, pg_schema)
    old = _rows(DAY1, users=1_000, k=20, model="m1")
    write_publication(pg_engine, pg_schema, iter(old), as_of=DAY1, run_id="run-1", model_version="m1", top_k=20)
    reader = sa.create_engine(pg_engine.url, isolation_level="AUTOCOMMIT")
    seen: list[tuple[int, int, str]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def poll() -> None:
        sql = sa.text(f'SELECT count(*), count(DISTINCT model_version), min(model_version) FROM "{pg_schema}".latest_recommendations')
        try:
            with reader.connect() as conn:
                while not stop.is_set():
                    seen.append(tuple(conn.execute(sql).one()))
                seen.append(tuple(conn.execute(sql).one()))
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    thread = threading.Thread(target=poll)
    thread.start()
    try:
        while not seen:
            time.sleep(0.01)
        write_publication(pg_engine, pg_schema, iter(_rows(DAY1, users=10_000, k=20, model="m2", run="run-2")),
                as_of=DAY1, run_id="run-2", model_version="m2", top_k=20)
    finally:
        stop.set()
        thread.join()
        reader.dispose()
    assert not errors, errors
    assert set(seen) <= {(20_000, 1, "m1"), (200_000, 1, "m2")}, set(seen) - {(20_000, 1, "m1"), (200_000, 1, "m2")}
    assert seen[0] == (20_000, 1, "m1") and seen[-1] == (200_000, 1, "m2")
    assert len(seen) > 10  # the reader really polled while the publication was being written
    # Once the new set was visible, the old one never came back.
    first_new = seen.index((200_000, 1, "m2"))
    assert set(seen[first_new:]) == {(200_000, 1, "m2")}
