"""Publishing next to readers and other publishers, and never publishing garbage.

Readers of ``latest_recommendations`` must never wait long on a publish (a republish waits for a long
analyst transaction instead of queueing every new reader behind its lock request); two runs publishing
the same date are serialised with a named error for the loser; broken lists (non-finite scores, items
outside the catalogue, lists shorter than the ranking can give) and large shrinks are refused with the
previous publication untouched; staging tables of killed publishes are dropped by the next publish.
Real PostgreSQL (and SQLite where the behaviour is portable), hand-made rows.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest
import sqlalchemy as sa

from recsys_tasks.data.publication import (
    RecommendationRow,
    SimilarItemRow,
    write_publication,
    write_similar_items,
)
from recsys_tasks.data.publish_locks import stage_name
from recsys_tasks.data.publish_safety import (
    ListSpec,
    PublicationShrank,
    PublishInProgress,
    PublishPolicy,
    TableBusy,
    UnsafePublication,
)
from recsys_tasks.data.warehouse import create_engine, ensure_output_schema
from recsys_tasks.sqlfiles import statement

DAY1, DAY2 = date(2026, 2, 1), date(2026, 2, 2)
STAMP = datetime(2026, 2, 2, 3, 0, tzinfo=UTC)
#: Short waits so the tests stay fast; the defaults come from the config.
QUICK = PublishPolicy(lock_timeout_ms=300, lock_retries=30, max_shrink_share=0.5, allow_shrink=False)


def _rows(as_of: date, users: int, k: int, model: str, *, run: str = "run-1") -> list[RecommendationRow]:
    return [
        RecommendationRow(as_of, f"u{u:05d}", r, f"i{(u + r) % 97}", 1.0 / r, model, run, "trending now", STAMP)
        for u in range(users)
        for r in range(1, k + 1)
    ]


def _publish(engine: sa.Engine, schema: str, rows, *, as_of: date = DAY1, model: str = "m1", k: int = 5, **kwargs):
    return write_publication(engine, schema, iter(rows), as_of=as_of, run_id="run-1", model_version=model, top_k=k, **kwargs)


def _state(engine: sa.Engine, schema: str) -> tuple[list[tuple], list[tuple]]:
    with engine.connect() as conn:
        pubs = conn.execute(sa.text(f'SELECT as_of, model_version, users, "rows" FROM "{schema}".publications ORDER BY as_of')).all()
        rows = conn.execute(sa.text(f'SELECT as_of, user_id, rank, item_id, model_version FROM "{schema}".recommendations ORDER BY 1, 2, 3')).all()
    return [tuple(p) for p in pubs], [tuple(r) for r in rows]


def _tables(engine: sa.Engine, schema: str) -> set[str]:
    return set(sa.inspect(engine).get_table_names(schema=schema))


def _latest_models(conn: sa.Connection, schema: str) -> tuple[int, str]:
    return tuple(conn.execute(sa.text(f'SELECT count(*), min(model_version) FROM "{schema}".latest_recommendations')).one())


class _Publisher(threading.Thread):
    """A publish in the background; its result or exception is kept for the test's thread."""

    def __init__(self, **publish) -> None:
        super().__init__(daemon=True)
        self.publish, self.result, self.error = publish, None, None

    def run(self) -> None:
        try:
            self.result = _publish(**self.publish)
        except BaseException as exc:  # reported in the test's thread
            self.error = exc


def test_a_republish_waits_for_a_long_reader_and_never_stalls_new_readers(pg_engine, pg_schema):
    ensure_output_schema(pg_engine, pg_schema)
    _publish(pg_engine, pg_schema, _rows(DAY1, 200, 5, "m1"))
    readers = sa.create_engine(pg_engine.url, isolation_level="AUTOCOMMIT")
    analyst = pg_engine.connect()
    try:
        _latest_models(analyst, pg_schema)  # an open transaction: holds ACCESS SHARE until it ends
        publisher = _Publisher(engine=pg_engine, schema=pg_schema, rows=_rows(DAY1, 200, 5, "m2"), model="m2", policy=QUICK)
        publisher.start()
        latencies, seen = [], set()
        with readers.connect() as conn:
            until = time.monotonic() + 3.0
            while time.monotonic() < until:
                started = time.monotonic()
                seen.add(_latest_models(conn, pg_schema))
                latencies.append(time.monotonic() - started)
                time.sleep(0.05)
        assert publisher.is_alive(), f"the republish must wait for the analyst: {publisher.error!r}"
        assert seen == {(1000, "m1")}
        # Before, the swap's ACCESS EXCLUSIVE request queued every reader behind the analyst.
        assert len(latencies) > 20 and max(latencies) < 1.0, max(latencies)
        analyst.commit()
        publisher.join(timeout=60)
        assert not publisher.is_alive() and publisher.error is None, publisher.error
        assert publisher.result.lock_waits >= 1
        with readers.connect() as conn:
            assert _latest_models(conn, pg_schema) == (1000, "m2")
    finally:
        analyst.close()
        readers.dispose()
    assert not {t for t in _tables(pg_engine, pg_schema) if "stage" in t}


def test_a_publish_gives_up_clearly_when_a_reader_never_lets_go(pg_engine, pg_schema):
    ensure_output_schema(pg_engine, pg_schema)
    _publish(pg_engine, pg_schema, _rows(DAY1, 50, 5, "m1"))
    before = _state(pg_engine, pg_schema)
    with pg_engine.connect() as analyst:
        _latest_models(analyst, pg_schema)
        started = time.monotonic()
        with pytest.raises(TableBusy, match=rf"a reader held {pg_schema}\.recommendations for longer than .*previous publication is unchanged"):
            _publish(pg_engine, pg_schema, _rows(DAY1, 50, 5, "m2"), model="m2",
                     policy=PublishPolicy(lock_timeout_ms=100, lock_retries=2, max_shrink_share=0.5, allow_shrink=False))
        assert time.monotonic() - started < 10
    assert _state(pg_engine, pg_schema) == before
    assert not {t for t in _tables(pg_engine, pg_schema) if "stage" in t}


def test_a_swap_whose_lock_wait_times_out_is_retried_then_refused(pg_database_url, pg_schema):
    # A lock the pre-check cannot see coming (SHARE on publications blocks the upsert) makes the
    # try itself time out under SET LOCAL lock_timeout; the project's engine names the timeout.
    engine = create_engine(pg_database_url, output_schema=pg_schema)
    try:
        ensure_output_schema(engine, pg_schema)
        _publish(engine, pg_schema, _rows(DAY1, 50, 5, "m1"))
        before = _state(engine, pg_schema)
        with engine.connect() as other:
            other.execute(sa.text(f'LOCK TABLE "{pg_schema}".publications IN SHARE MODE'))
            with pytest.raises(TableBusy, match="2 tries, each waiting at most 100 ms"):
                _publish(engine, pg_schema, _rows(DAY2, 50, 5, "m2"), as_of=DAY2, model="m2",
                         policy=PublishPolicy(lock_timeout_ms=100, lock_retries=1, max_shrink_share=0.5, allow_shrink=False))
        assert _state(engine, pg_schema) == before
        assert not {t for t in _tables(engine, pg_schema) if "stage" in t}
        assert _publish(engine, pg_schema, _rows(DAY2, 50, 5, "m2"), as_of=DAY2, model="m2", policy=QUICK).rows == 250
    finally:
        engine.dispose()


def test_two_runs_publishing_the_same_date_are_serialised(pg_engine, pg_schema):
    ensure_output_schema(pg_engine, pg_schema)
    loading = threading.Event()

    def slow_rows() -> Iterator[RecommendationRow]:
        for n, row in enumerate(_rows(DAY1, 100, 5, "mA")):
            if n == 10:
                loading.set()
                time.sleep(2.0)  # the first run is still loading its stage when the others start
            yield row

    first = _Publisher(engine=pg_engine, schema=pg_schema, rows=slow_rows(), model="mA", policy=QUICK)
    first.start()
    assert loading.wait(timeout=30)
    with pytest.raises(PublishInProgress, match=f"another run is publishing 2026-02-01 to {pg_schema}"):
        _publish(pg_engine, pg_schema, _rows(DAY1, 100, 5, "mB"), model="mB", policy=QUICK)
    # Another date goes ahead meanwhile, and leaves the first run's live stage alone.
    assert _publish(pg_engine, pg_schema, _rows(DAY2, 100, 5, "mC"), as_of=DAY2, model="mC", policy=QUICK).rows == 500
    first.join(timeout=60)
    assert first.error is None, first.error
    pubs, _ = _state(pg_engine, pg_schema)
    assert [(str(p[0]), p[1]) for p in pubs] == [("2026-02-01", "mA"), ("2026-02-02", "mC")]
    # The lock is released: the next publish of that date goes through.
    assert _publish(pg_engine, pg_schema, _rows(DAY1, 100, 5, "mB"), model="mB", policy=QUICK).model_version == "mB"


def test_leftover_stages_of_any_date_are_dropped_by_the_next_publish(output_db):
    engine, schema = output_db
    dialect = engine.dialect.name
    leftovers = [stage_name("recommendations", date(2026, 1, 15)), stage_name("similar_items", date(2026, 1, 10))]
    decoys = ["recommendations_stage_notes", "my_recommendations_stage_20260115", "recommendations_stage_20261399"]
    with engine.begin() as conn:
        conn.execute(statement("create_recommendations_stage", dialect=dialect, schema=schema, stage=leftovers[0]))
        conn.execute(statement("create_similar_items_stage", dialect=dialect, schema=schema, stage=leftovers[1]))
        for name in decoys:
            conn.execute(sa.text(f'CREATE TABLE "{schema}"."{name}" (note TEXT)'))
    assert set(leftovers) | set(decoys) <= _tables(engine, schema)
    _publish(engine, schema, _rows(DAY1, 3, 2, "m1"), k=2)
    tables = _tables(engine, schema)
    assert not set(leftovers) & tables
    assert set(decoys) <= tables  # user tables are never taken for stages


def test_non_finite_scores_are_never_published(output_db):
    engine, schema = output_db
    _publish(engine, schema, _rows(DAY1, 5, 3, "m1"), k=3)
    before = _state(engine, schema)
    for bad in (float("nan"), float("inf")):
        rows = _rows(DAY1, 5, 3, "m2")
        rows[7] = rows[7]._replace(score=bad)
        with pytest.raises(UnsafePublication, match=f"the row of 'u00002' at rank 2 has score {bad} .not finite."):
            _publish(engine, schema, rows, model="m2", k=3)
        assert _state(engine, schema) == before
    similar = [SimilarItemRow(DAY1, "i1", 1, "i2", float("nan"), "m2")]
    with pytest.raises(UnsafePublication, match="not finite"):
        write_similar_items(engine, schema, iter(similar), as_of=DAY1)
    assert not {t for t in _tables(engine, schema) if "stage" in t}


def test_lists_that_break_the_spec_are_refused(output_db):
    engine, schema = output_db
    catalogue = frozenset(f"i{n}" for n in range(97))
    good = _rows(DAY1, 4, 5, "m1")
    # u00003 may only be recommended 2 items (tiny catalogue after exclusions): 2 rows are enough.
    good = [r for r in good if r.user_id != "u00003" or r.rank <= 2]
    spec = ListSpec(
        top_k=5, catalogue=catalogue, need={"u00000": 5, "u00001": 5, "u00002": 5, "u00003": 2},
        eligible={"u00000": 90, "u00001": 90, "u00002": 90, "u00003": 2},
    )
    assert _publish(engine, schema, good, spec=spec).rows == 17
    before = _state(engine, schema)

    short = [r for r in good if r.user_id != "u00001" or r.rank == 1]  # a collapsed model's 1-item list
    with pytest.raises(UnsafePublication, match=r"user 'u00001' has 1 recommendation\(s\) but min\(top_k=5, 90 items .*\) = 5"):
        _publish(engine, schema, short, model="m2", spec=spec)
    missing = [r for r in good if r.user_id != "u00002"]
    with pytest.raises(UnsafePublication, match="user 'u00002' has 0 recommendation"):
        _publish(engine, schema, missing, model="m2", spec=spec)
    outside = [r._replace(item_id="gone") if (r.user_id, r.rank) == ("u00000", 3) else r for r in good]
    with pytest.raises(UnsafePublication, match="item 'gone', which is not in the run's catalogue"):
        _publish(engine, schema, outside, model="m2", spec=spec)
    assert _state(engine, schema) == before
    assert not {t for t in _tables(engine, schema) if "stage" in t}


def test_a_publication_that_shrank_is_refused_unless_allowed(output_db):
    engine, schema = output_db
    _publish(engine, schema, _rows(DAY1, 100, 5, "m1"))
    before = _state(engine, schema)
    with pytest.raises(PublicationShrank, match="would have 40 users and 200 rows, down from 100 users and 500 rows in the publication of 2026-02-01"):
        _publish(engine, schema, _rows(DAY2, 40, 5, "m2"), as_of=DAY2, model="m2")
    with pytest.raises(PublicationShrank, match="100 users and 200 rows"):  # as many users, lists cut to 2
        _publish(engine, schema, _rows(DAY2, 100, 2, "m2"), as_of=DAY2, model="m2", k=2)
    assert _state(engine, schema) == before
    assert not {t for t in _tables(engine, schema) if "stage" in t}
    # Within the share, or when allowed, it goes through.
    assert _publish(engine, schema, _rows(DAY2, 60, 5, "m2"), as_of=DAY2, model="m2").users == 60
    allowed = PublishPolicy.from_config(allow_shrink=True)
    assert _publish(engine, schema, _rows(DAY2, 10, 5, "m3"), as_of=DAY2, model="m3", policy=allowed).users == 10
