"""Publishing: atomic, idempotent swaps of one as-of date's top-K rows, and the rows themselves.

Rows are hand-made tuples of ``publish.ROW_COLUMNS`` (or come from a tiny fake recommender), written to
real PostgreSQL (partition swap) and SQLite (delete + insert) output schemas.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime

import numpy as np
import pytest
import sqlalchemy as sa

from recsys_tasks.data import warehouse
from recsys_tasks.data.publication import ROW_COLUMNS, write_publication
from recsys_tasks.data.sequences import EVENT_TYPE_IDS, ItemVocab, SequenceData
from recsys_tasks.data.warehouse import ensure_output_schema
from recsys_tasks.serving.ranking import exclusions, recommendation_rows

DAY1, DAY2 = date(2026, 2, 1), date(2026, 2, 2)
STAMP = "2026-02-02 03:00:00.000000+00:00"


def _rows(as_of: date, users: int, k: int, model: str, *, run: str = "run-1", stamp: str = STAMP) -> list[tuple]:
    return [
        (as_of.isoformat(), f"u{u:06d}", r, f"i{(u + r) % 97}", 1.0 / r, model, run, "trending now", stamp)
        for u in range(users)
        for r in range(1, k + 1)
    ]


@pytest.fixture(params=["postgresql", "sqlite"])
def out(request, sqlite_url) -> Iterator[tuple[sa.Engine, str]]:
    """An engine and an output schema made by ensure_output_schema, on each dialect."""
    if request.param == "postgresql":
        engine = request.getfixturevalue("pg_engine")
        schema = request.getfixturevalue("pg_schema")
        ensure_output_schema(engine, schema)
        yield engine, schema
    else:
        engine = warehouse.create_engine(sqlite_url)
        ensure_output_schema(engine, "recsys")
        yield engine, "recsys"
        engine.dispose()


def _read(engine: sa.Engine, schema: str, *, view: bool = False) -> list[tuple]:
    table = "latest_recommendations" if view else "recommendations"
    cols = ", ".join(ROW_COLUMNS)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f'SELECT {cols} FROM "{schema}".{table} ORDER BY as_of, user_id, rank')).all()
    return [tuple(str(v) if isinstance(v, (date, datetime)) else v for v in row) for row in rows]


def _publications(engine: sa.Engine, schema: str) -> list[tuple]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            f'SELECT as_of, run_id, model_version, users, rows, top_k, published_at FROM "{schema}".publications ORDER BY as_of'
        )).all()
    return [tuple(str(v)[:10] if i == 0 else v for i, v in enumerate(row)) for row in rows]


def _stages(engine: sa.Engine, schema: str) -> list[str]:
    names = sa.inspect(engine).get_table_names(schema=schema)
    return [n for n in names if "stage" in n]


def test_publish_writes_rows_publication_and_latest_view(out):
    engine, schema = out
    first = _rows(DAY1, users=3, k=2, model="m1")
    result = write_publication(engine, schema, iter(first), as_of=DAY1, run_id="run-1", model_version="m1", top_k=2)
    assert (result.as_of, result.model_version, result.users, result.rows) == (DAY1, "m1", 3, 6)
    stored = _read(engine, schema)
    assert [r[1:3] + r[3:4] for r in stored] == [(f"u{u:06d}", r, f"i{(u + r) % 97}") for u in range(3) for r in (1, 2)]
    assert [r[4] for r in stored] == pytest.approx([1.0, 0.5] * 3)
    assert {r[0][:10] for r in stored} == {"2026-02-01"}
    assert [p[:6] for p in _publications(engine, schema)] == [("2026-02-01", "run-1", "m1", 3, 6, 2)]
    assert len(_read(engine, schema, view=True)) == 6

    second = _rows(DAY2, users=2, k=3, model="m2", run="run-2")
    write_publication(engine, schema, iter(second), as_of=DAY2, run_id="run-2", model_version="m2", top_k=3)
    latest = _read(engine, schema, view=True)
    assert len(latest) == 6 and {r[5] for r in latest} == {"m2"} and {r[0][:10] for r in latest} == {"2026-02-02"}
    assert len(_read(engine, schema)) == 12  # both dates are kept

    # A backfill of the older date replaces that date only; the view still shows the newest as-of.
    backfill = _rows(DAY1, users=1, k=2, model="m0", run="run-0")
    write_publication(engine, schema, iter(backfill), as_of=DAY1, run_id="run-0", model_version="m0", top_k=2)
    assert {r[5] for r in _read(engine, schema, view=True)} == {"m2"}
    day1 = [r for r in _read(engine, schema) if r[0].startswith("2026-02-01")]
    assert len(day1) == 2 and {r[5] for r in day1} == {"m0"}
    assert [p[:6] for p in _publications(engine, schema)] == [
        ("2026-02-01", "run-0", "m0", 1, 2, 2),
        ("2026-02-02", "run-2", "m2", 2, 6, 3),
    ]
    assert _stages(engine, schema) == []


def test_republishing_the_same_rows_gives_the_same_table(out):
    engine, schema = out
    write_publication(engine, schema, iter(_rows(DAY1, 4, 3, "m1")), as_of=DAY1, run_id="run-1", model_version="m1", top_k=3)
    before_rows, before_pub = _read(engine, schema), _publications(engine, schema)
    again = _rows(DAY1, 4, 3, "m1", stamp="2026-02-02 04:00:00.000000+00:00")  # a retry an hour later
    write_publication(engine, schema, iter(again), as_of=DAY1, run_id="run-1", model_version="m1", top_k=3)
    after_rows, after_pub = _read(engine, schema), _publications(engine, schema)
    assert [r[:-1] for r in after_rows] == [r[:-1] for r in before_rows]
    assert len(after_rows) == 12
    assert [p[:6] for p in after_pub] == [p[:6] for p in before_pub] == [("2026-02-01", "run-1", "m1", 4, 12, 3)]
    assert _stages(engine, schema) == []


def test_a_publish_killed_midway_leaves_the_previous_publication(out):
    engine, schema = out
    write_publication(engine, schema, iter(_rows(DAY1, 5, 2, "m1")), as_of=DAY1, run_id="run-1", model_version="m1", top_k=2)
    before_rows, before_pub = _read(engine, schema), _publications(engine, schema)

    def dying_rows() -> Iterator[tuple]:
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
    assert {r[5] for r in _read(engine, schema, view=True)} == {"m2"} and len(_read(engine, schema)) == 100


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


# ------------------------------------------------------------------------------ rows from a model


class FakeRecommender:
    """Scores every item by a fixed global preference (item index 1 best); honours ``exclude`` like the
    real recommender, padding with index 0 / -inf when fewer than k items are eligible."""

    def __init__(self, item_ids: list[str]) -> None:
        self.vocab = ItemVocab(item_ids)
        self.calls: list[tuple[int, list]] = []

    def recommend(self, histories, *, k, exclude=None, batch_users=4096):
        n = len(self.vocab)
        self.calls.append((k, [set(e) for e in exclude] if exclude is not None else None))
        for start in range(0, len(histories), batch_users):
            stop = min(start + batch_users, len(histories))
            top = np.zeros((stop - start, k), dtype=np.int64)
            scores = np.full((stop - start, k), -np.inf, dtype=np.float32)
            for b, u in enumerate(range(start, stop)):
                banned = exclude[u] if exclude is not None else set()
                eligible = [i for i in range(1, n) if i not in banned][:k]
                top[b, : len(eligible)] = eligible
                scores[b, : len(eligible)] = [10.0 - i for i in eligible]
            yield start, top, scores


def _histories(vocab: ItemVocab, users: dict[str, list[tuple[str, str]]]) -> SequenceData:
    data = SequenceData([], [], [], [])
    for user, events in users.items():
        data.user_ids.append(user)
        data.items.append(vocab.encode([item for item, _ in events]))
        data.event_types.append(np.array([EVENT_TYPE_IDS[kind] for _, kind in events], dtype=np.int64))
        data.timestamps.append(1_770_000_000 + 60 * np.arange(len(events), dtype=np.int64))
    return data


def test_recommendation_rows_exclude_purchases_and_explain_themselves():
    rec = FakeRecommender(["a", "b", "c", "d", "e", "f"])
    histories = _histories(rec.vocab, {
        "new": [],
        "buyer": [("a", "view"), ("a", "purchase"), ("c", "purchase"), ("b", "view")],
        "viewer": [("b", "purchase"), ("d", "view")],
    })
    excluded = exclusions(histories, ["purchase"])
    assert excluded == [set(), {1, 3}, {2}]
    titles = {"b": "Burr Grinder", "d": "Dome Tent"}
    rows = list(recommendation_rows(
        rec, histories, k=3, exclude=excluded, as_of=DAY1, run_id="run-1", model_version="m1",
        titles=titles, batch_users=2, generated_at=datetime(2026, 2, 1, 3, 0, tzinfo=UTC),
    ))
    assert [(r[1], r[2], r[3]) for r in rows] == [
        ("new", 1, "a"), ("new", 2, "b"), ("new", 3, "c"),
        ("buyer", 1, "b"), ("buyer", 2, "d"), ("buyer", 3, "e"),
        ("viewer", 1, "a"), ("viewer", 2, "c"), ("viewer", 3, "d"),
    ]
    reasons = {r[1]: r[7] for r in rows}
    assert reasons == {"new": "trending now", "buyer": "because you viewed Burr Grinder", "viewer": "because you viewed Dome Tent"}
    assert {r[0] for r in rows} == {DAY1} and {r[8] for r in rows} == {datetime(2026, 2, 1, 3, 0, tzinfo=UTC)}
    assert {(r[5], r[6]) for r in rows} == {("m1", "run-1")}
    assert rows[3][4] == 8.0  # buyer's best: b (index 2) scores 10 - 2


def test_reason_uses_the_last_event_verb_and_falls_back_to_the_item_id():
    rec = FakeRecommender(["a", "b", "c", "d"])
    histories = _histories(rec.vocab, {"u1": [("a", "view"), ("c", "purchase")], "u2": [("b", "add_to_cart")]})
    rows = list(recommendation_rows(rec, histories, k=1, exclude=None, as_of=DAY1, run_id="r", model_version="m",
                                    titles={"c": "Camp Stove"}))
    assert [r[7] for r in rows] == ["because you bought Camp Stove", "because you added to your cart b"]


def test_no_excluded_item_and_k_distinct_items_per_user_on_a_bigger_catalogue():
    rng = np.random.default_rng(7)
    items = [f"i{n}" for n in range(40)]
    rec = FakeRecommender(items)
    kinds = ["view", "click", "add_to_cart", "purchase"]
    users = {
        f"u{u}": [(items[int(rng.integers(0, 40))], kinds[int(rng.integers(0, 4))]) for _ in range(int(rng.integers(0, 30)))]
        for u in range(60)
    }
    histories = _histories(rec.vocab, users)
    k = 10
    rows = list(recommendation_rows(rec, histories, k=k, exclude=exclusions(histories, ["purchase"]), as_of=DAY1,
                                    run_id="r", model_version="m", titles={}, batch_users=7))
    by_user: dict[str, list[str]] = {}
    for r in rows:
        by_user.setdefault(r[1], []).append(r[3])
    assert list(by_user) == list(users)
    for user, events in users.items():
        bought = {item for item, kind in events if kind == "purchase"}
        assert len(by_user[user]) == k and len(set(by_user[user])) == k
        assert not bought & set(by_user[user])
    assert any(kind == "purchase" for events in users.values() for _, kind in events)  # the rule was exercised


def test_a_user_with_fewer_eligible_items_than_k_gets_only_real_items():
    # 4 items, k = 3, and "buyer" already bought 2 of them: only 2 items are eligible. The recommender
    # pads with index 0; that padding must not become an item (index 0 is not in the vocabulary).
    rec = FakeRecommender(["a", "b", "c", "d"])
    histories = _histories(rec.vocab, {"buyer": [("d", "purchase"), ("b", "purchase")], "new": []})
    rows = list(recommendation_rows(rec, histories, k=3, exclude=exclusions(histories, ["purchase"]), as_of=DAY1,
                                    run_id="r", model_version="m", titles={}))
    assert [(r[1], r[2], r[3]) for r in rows] == [
        ("buyer", 1, "a"), ("buyer", 2, "c"),
        ("new", 1, "a"), ("new", 2, "b"), ("new", 3, "c"),
    ]
    assert all(np.isfinite(r[4]) for r in rows)
