"""Ranked rows and the business rules in published lists, the similar-items table and the read-only role.

A fake scorer with a fixed global preference (item index 1 best) and hand-made 2-d item vectors
(books along x, tents along y) makes every expected list computable by hand.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from recsys_tasks import cli
from recsys_tasks.config import PublishConfig, RecsysConfig, WarehouseConfig
from recsys_tasks.data import warehouse
from recsys_tasks.data.publication import (
    RecommendationRow,
    SimilarItemRow,
    write_publication,
    write_similar_items,
)
from recsys_tasks.data.sequences import EVENT_TYPE_IDS, ItemVocab, SequenceData, build_sequences
from recsys_tasks.data.sources import create_source_tables
from recsys_tasks.data.warehouse import ensure_output_schema
from recsys_tasks.serving.ranking import exclusions, prepare_rules, recommendation_rows
from recsys_tasks.serving.similar import similar_item_rows
from recsys_tasks.timeutil import as_date

AS_OF = date(2026, 2, 1)
ITEMS = ["a", "b", "c", "d", "e", "f", "n1", "g"]  # vocabulary order: index 1..8
CATEGORY = {"a": "books", "b": "books", "c": "books", "g": "books", "d": "tents", "e": "tents", "f": "tents", "n1": "tents"}
TITLES = {i: f"Title {i.upper()}" for i in ITEMS}
VECTORS = np.array(
    [[0, 0], [1, 0], [1, 0.1], [0.9, 0.2], [0, 1], [0.1, 1], [0.2, 0.9], [0.1, 0.9], [1, -0.1]], dtype=np.float32
)


class FixedScorer:
    """Scores item i as 10 - i for everyone (item index 1 best); honours ``exclude`` like the real
    recommender, padding with index 0 / -inf when fewer than k items are eligible."""

    def __init__(self, item_ids: list[str], vectors: np.ndarray | None = None) -> None:
        self.vocab = ItemVocab(item_ids)
        self.vectors = vectors if vectors is not None else np.zeros((len(self.vocab), 1), dtype=np.float32)

    def recommend(self, histories, *, k, exclude=None, batch_users=4096):
        n = len(self.vocab)
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

    def item_vectors(self) -> np.ndarray:
        return self.vectors


def _at(days_before: float) -> pd.Timestamp:
    return pd.Timestamp(datetime(2026, 2, 1, tzinfo=UTC) - timedelta(days=days_before))


def _events(rows: list[tuple[str, str | None, str, float, str | None]]) -> pd.DataFrame:
    return pd.DataFrame({
        "event_id": [f"e{n}" for n in range(len(rows))],
        "user_id": [r[0] for r in rows],
        "item_id": pd.array([r[1] for r in rows], dtype="string"),
        "event_type": [r[2] for r in rows],
        "event_ts": pd.to_datetime([_at(r[3]) for r in rows], utc=True),
        "value": np.full(len(rows), np.nan),
        "query": pd.array([r[4] for r in rows], dtype="string"),
        "session_id": pd.array([None] * len(rows), dtype="string"),
    })


def _items() -> pd.DataFrame:
    created = {i: _at(60) for i in ITEMS} | {"n1": _at(2), "g": _at(30)}
    return pd.DataFrame({
        "item_id": ITEMS,
        "title": [TITLES[i] for i in ITEMS],
        "category": [CATEGORY[i] for i in ITEMS],
        "created_at": pd.to_datetime([created[i] for i in ITEMS], utc=True),
    })


SHOP = _events([
    ("buyer", "a", "view", 3, None), ("buyer", "a", "purchase", 3, None), ("buyer", "b", "view", 2, None),
    ("cold", "e", "view", 2, None),
    ("searcher", None, "search", 1, "Tents for two"),
    ("looker", "c", "view", 3, None), ("looker", "c", "click", 2, None), ("looker", "c", "view", 1, None),
    ("looker", "d", "view", 1, None),
    ("t1", "e", "view", 1, None), ("t1", "e", "view", 1, None), ("t1", "d", "view", 1, None), ("t1", "b", "view", 1, None),
    ("old", "f", "view", 20, None), ("old", "f", "view", 19, None),
])
USERS = ["buyer", "cold", "searcher", "looker", "t1", "old"]


def _lists(cfg: PublishConfig, *, k: int, users: list[str] = USERS) -> dict[str, list[RecommendationRow]]:
    rec = FixedScorer(ITEMS, VECTORS)
    histories = build_sequences(SHOP, rec.vocab, users=users)
    rules = prepare_rules(cfg, vocab=rec.vocab, events=SHOP, items=_items(), as_of=AS_OF, item_vectors=rec.item_vectors())
    rows = recommendation_rows(rec, histories, k=k, exclude=exclusions(histories, cfg.exclude_event_types), as_of=AS_OF,
                               run_id="r", model_version="m", titles=TITLES, batch_users=4, rules=rules)
    out: dict[str, list[RecommendationRow]] = {}
    for row in rows:
        out.setdefault(row.user_id, []).append(row)
    return out


def test_rules_shape_every_list():
    cfg = PublishConfig(top_k=3, candidate_margin=5, demote_after=None, min_history=2, trending_days=7, new_item_slots=1)
    lists = _lists(cfg, k=3)
    assert list(lists) == USERS
    for user, rows in lists.items():
        assert [r.rank for r in rows] == [1, 2, 3], user  # exactly k, ranked 1..k
        assert len({r.item_id for r in rows}) == 3, user  # distinct
        assert all(earlier.score >= later.score for earlier, later in zip(rows, rows[1:])), user  # scores never rise
    items = {user: [r.item_id for r in rows] for user, rows in lists.items()}
    reasons = {user: [r.reason for r in rows] for user, rows in lists.items()}
    # buyer bought a: never recommended. b, c by score; the new tent n1 takes the last slot at d's score.
    assert items["buyer"] == ["b", "c", "n1"]
    assert [r.score for r in lists["buyer"]] == [8.0, 7.0, 6.0]
    assert reasons["buyer"] == ["similar to Title A you bought", "similar to Title B you viewed", "new in tents"]
    # cold (one view of a tent) and searcher (searched "tents"): trending tents in the last 7 days
    # (e: 3 events, d: 2; f's events are older), then trending anywhere (c: 3 looker events; its
    # count is capped at 2 so scores never rise with rank).
    for user in ("cold", "searcher"):
        assert items[user] == ["e", "d", "c"], user
        assert reasons[user] == ["trending in tents", "trending in tents", "trending now"], user
        assert [r.score for r in lists[user]] == [3.0, 2.0, 2.0]
    # old (only events outside the trending window) is warm: model list with the new-item slot.
    assert items["old"] == ["a", "b", "n1"] and reasons["old"][2] == "new in tents"
    assert reasons["old"][:2] == ["similar to Title F you viewed"] * 2
    # g is an old item without interactions: not "new", so it never takes the slot.
    assert all("g" not in listed for listed in items.values())


def test_demotion_pushes_down_an_item_looked_at_repeatedly_without_buying():
    base = dict(top_k=3, candidate_margin=5, min_history=0, new_item_slots=0)
    off = _lists(PublishConfig(**base, demote_after=None), k=3, users=["looker"])
    assert [r.item_id for r in off["looker"]] == ["a", "b", "c"]
    # c was viewed/clicked 3 times: 7 + ln(0.1) = 4.70 falls below d (6) and e (5).
    on = _lists(PublishConfig(**base, demote_after=3, demote_factor=0.1), k=5, users=["looker"])
    assert [r.item_id for r in on["looker"]] == ["a", "b", "d", "e", "c"]
    assert on["looker"][4].score == pytest.approx(7 + np.log(0.1))
    lenient = _lists(PublishConfig(**base, demote_after=4, demote_factor=0.1), k=3, users=["looker"])
    assert [r.item_id for r in lenient["looker"]] == ["a", "b", "c"]
    gone = _lists(PublishConfig(**base, demote_after=3, demote_factor=0.0), k=7, users=["looker"])
    assert "c" not in [r.item_id for r in gone["looker"]] and len(gone["looker"]) == 7


def test_category_cap_diversifies_each_list():
    base = dict(top_k=4, candidate_margin=5, min_history=0, new_item_slots=0, demote_after=None)
    plain = _lists(PublishConfig(**base), k=4, users=["t1"])
    assert [r.item_id for r in plain["t1"]] == ["a", "b", "c", "d"]
    capped = _lists(PublishConfig(**base, max_per_category=2), k=4, users=["t1"])
    assert [r.item_id for r in capped["t1"]] == ["a", "b", "d", "e"]


def test_a_new_item_is_eligible_by_score_too():
    # Without slots a new item competes by score: with k covering the catalogue it is listed.
    cfg = PublishConfig(top_k=7, candidate_margin=0, min_history=0, new_item_slots=0, demote_after=None)
    listed = _lists(cfg, k=7, users=["t1"])["t1"]
    assert "n1" in [r.item_id for r in listed]


# ------------------------------------------------------------------------------ plain top-K rows (default Rules())


def _histories(vocab: ItemVocab, users: dict[str, list[tuple[str, str]]]) -> SequenceData:
    data = SequenceData([], [], [], [])
    for user, events in users.items():
        data.user_ids.append(user)
        data.items.append(vocab.encode([item for item, _ in events]))
        data.event_types.append(np.array([EVENT_TYPE_IDS[kind] for _, kind in events], dtype=np.int64))
        data.timestamps.append(1_770_000_000 + 60 * np.arange(len(events), dtype=np.int64))
    return data


def test_recommendation_rows_exclude_purchases_and_explain_themselves():
    rec = FixedScorer(["a", "b", "c", "d", "e", "f"])
    histories = _histories(rec.vocab, {
        "new": [],
        "buyer": [("a", "view"), ("a", "purchase"), ("c", "purchase"), ("b", "view")],
        "viewer": [("b", "purchase"), ("d", "view")],
    })
    excluded = exclusions(histories, ["purchase"])
    assert excluded == [set(), {1, 3}, {2}]
    titles = {"b": "Burr Grinder", "d": "Dome Tent"}
    rows = list(recommendation_rows(
        rec, histories, k=3, exclude=excluded, as_of=AS_OF, run_id="run-1", model_version="m1",
        titles=titles, batch_users=2, generated_at=datetime(2026, 2, 1, 3, 0, tzinfo=UTC),
    ))
    assert [(r.user_id, r.rank, r.item_id) for r in rows] == [
        ("new", 1, "a"), ("new", 2, "b"), ("new", 3, "c"),
        ("buyer", 1, "b"), ("buyer", 2, "d"), ("buyer", 3, "e"),
        ("viewer", 1, "a"), ("viewer", 2, "c"), ("viewer", 3, "d"),
    ]
    reasons = {r.user_id: r.reason for r in rows}
    assert reasons == {"new": "trending now", "buyer": "because you viewed Burr Grinder", "viewer": "because you viewed Dome Tent"}
    assert {r.as_of for r in rows} == {AS_OF} and {r.generated_at for r in rows} == {datetime(2026, 2, 1, 3, 0, tzinfo=UTC)}
    assert {(r.model_version, r.run_id) for r in rows} == {("m1", "run-1")}
    assert rows[3].score == 8.0  # buyer's best: b (index 2) scores 10 - 2


def test_reason_uses_the_last_event_verb_and_falls_back_to_the_item_id():
    rec = FixedScorer(["a", "b", "c", "d"])
    histories = _histories(rec.vocab, {"u1": [("a", "view"), ("c", "purchase")], "u2": [("b", "add_to_cart")]})
    rows = list(recommendation_rows(rec, histories, k=1, exclude=None, as_of=AS_OF, run_id="r", model_version="m",
                                    titles={"c": "Camp Stove"}))
    assert [r.reason for r in rows] == ["because you bought Camp Stove", "because you added to your cart b"]


def test_no_excluded_item_and_k_distinct_items_per_user_on_a_bigger_catalogue():
    rng = np.random.default_rng(7)
    items = [f"i{n}" for n in range(40)]
    rec = FixedScorer(items)
    kinds = ["view", "click", "add_to_cart", "purchase"]
    users = {
        f"u{u}": [(items[int(rng.integers(0, 40))], kinds[int(rng.integers(0, 4))]) for _ in range(int(rng.integers(0, 30)))]
        for u in range(60)
    }
    histories = _histories(rec.vocab, users)
    k = 10
    rows = list(recommendation_rows(rec, histories, k=k, exclude=exclusions(histories, ["purchase"]), as_of=AS_OF,
                                    run_id="r", model_version="m", titles={}, batch_users=7))
    by_user: dict[str, list[str]] = {}
    for r in rows:
        by_user.setdefault(r.user_id, []).append(r.item_id)
    assert list(by_user) == list(users)
    for user, events in users.items():
        bought = {item for item, kind in events if kind == "purchase"}
        assert len(by_user[user]) == k and len(set(by_user[user])) == k
        assert not bought & set(by_user[user])
    assert any(kind == "purchase" for events in users.values() for _, kind in events)  # the rule was exercised


def test_a_user_with_fewer_eligible_items_than_k_gets_only_real_items():
    # 4 items, k = 3, and "buyer" already bought 2 of them: only 2 items are eligible. The recommender
    # pads with index 0; that padding must not become an item (index 0 is not in the vocabulary).
    rec = FixedScorer(["a", "b", "c", "d"])
    histories = _histories(rec.vocab, {"buyer": [("d", "purchase"), ("b", "purchase")], "new": []})
    rows = list(recommendation_rows(rec, histories, k=3, exclude=exclusions(histories, ["purchase"]), as_of=AS_OF,
                                    run_id="r", model_version="m", titles={}))
    assert [(r.user_id, r.rank, r.item_id) for r in rows] == [
        ("buyer", 1, "a"), ("buyer", 2, "c"),
        ("new", 1, "a"), ("new", 2, "b"), ("new", 3, "c"),
    ]
    assert all(np.isfinite(r.score) for r in rows)


# ------------------------------------------------------------------------------ databases


def test_published_lists_hold_k_distinct_unbought_items(output_db):
    engine, schema = output_db
    cfg = PublishConfig(top_k=3, candidate_margin=5, min_history=2)
    rec = FixedScorer(ITEMS, VECTORS)
    histories = build_sequences(SHOP, rec.vocab, users=USERS)
    rules = prepare_rules(cfg, vocab=rec.vocab, events=SHOP, items=_items(), as_of=AS_OF, item_vectors=rec.item_vectors())
    rows = recommendation_rows(rec, histories, k=3, exclude=exclusions(histories, ["purchase"]), as_of=AS_OF,
                               run_id="r", model_version="m", titles=TITLES, rules=rules)
    result = write_publication(engine, schema, rows, as_of=AS_OF, run_id="r", model_version="m", top_k=3)
    assert (result.users, result.rows) == (len(USERS), 3 * len(USERS))
    with engine.connect() as conn:
        per_user = conn.execute(sa.text(
            f'SELECT user_id, count(*), count(DISTINCT item_id) FROM "{schema}".latest_recommendations GROUP BY user_id'
        )).all()
        bought = conn.execute(sa.text(
            f"""SELECT count(*) FROM "{schema}".latest_recommendations WHERE user_id = 'buyer' AND item_id = 'a'"""
        )).scalar()
    assert sorted(per_user) == sorted((u, 3, 3) for u in USERS)
    assert bought == 0


def _similar(engine: sa.Engine, schema: str) -> list[SimilarItemRow]:
    cols = ", ".join(SimilarItemRow._fields)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f'SELECT {cols} FROM "{schema}".latest_similar_items ORDER BY item_id, rank')).all()
    return [SimilarItemRow(*row)._replace(as_of=as_date(row.as_of)) for row in rows]


def test_similar_items_are_n_distinct_neighbours_replaced_atomically(output_db):
    engine, schema = output_db
    vocab = ItemVocab(ITEMS)
    eligible = np.ones(len(vocab), dtype=bool)
    eligible[vocab.encode(["g"])] = False  # g left the catalogue: neither listed nor suggested
    rows = similar_item_rows(VECTORS, vocab, n=3, as_of=AS_OF, model_version="m1", eligible=eligible, batch_items=3)
    count, listed = write_similar_items(engine, schema, rows, as_of=AS_OF)
    assert (count, listed) == (21, 7)
    first = _similar(engine, schema)
    by_item: dict[str, list[str]] = {}
    for row in first:
        by_item.setdefault(row.item_id, []).append(row.similar_item_id)
    assert sorted(by_item) == sorted(set(ITEMS) - {"g"})
    for item, others in by_item.items():
        assert len(others) == 3 and len(set(others)) == 3 and item not in others and "g" not in others
    assert by_item["a"] == ["b", "c", "f"]  # cosines 0.995, 0.976, 0.216 (n1: 0.110)
    assert by_item["d"] == ["e", "n1", "f"]  # 0.995, 0.994, 0.976
    assert [r.rank for r in first[:3]] == [1, 2, 3] and first[0].score == pytest.approx(1 / np.hypot(1, 0.1))
    assert {r.as_of for r in first} == {AS_OF}

    # A rerun for the same date (another model, another n) replaces the whole set; nothing is left over.
    rows = similar_item_rows(VECTORS, vocab, n=2, as_of=AS_OF, model_version="m2")
    write_similar_items(engine, schema, rows, as_of=AS_OF)
    second = _similar(engine, schema)
    assert len(second) == 16 and {r.model_version for r in second} == {"m2"}
    with engine.connect() as conn:
        assert conn.execute(sa.text(f'SELECT count(*) FROM "{schema}".similar_items')).scalar() == 16
    assert not [n for n in sa.inspect(engine).get_table_names(schema=schema) if "stage" in n]


def test_a_killed_similar_items_publish_leaves_the_previous_set(output_db):
    engine, schema = output_db
    vocab = ItemVocab(ITEMS)
    write_similar_items(engine, schema, similar_item_rows(VECTORS, vocab, n=2, as_of=AS_OF, model_version="m1"), as_of=AS_OF)
    before = _similar(engine, schema)

    def dying() -> Iterator[SimilarItemRow]:
        for n, row in enumerate(similar_item_rows(VECTORS, vocab, n=3, as_of=AS_OF, model_version="m2")):
            if n == 5:
                raise KeyboardInterrupt("worker killed")
            yield row

    with pytest.raises(KeyboardInterrupt):
        write_similar_items(engine, schema, dying(), as_of=AS_OF, chunk_rows=2)
    assert _similar(engine, schema) == before


# ------------------------------------------------------------------------------ reader role


def test_reader_role_reads_outputs_but_not_behaviour(pg_engine, pg_schema, tmp_path):
    source, output = pg_schema, pg_schema + "_out"
    create_source_tables(pg_engine, warehouse=WarehouseConfig(source_schema=source))
    with pg_engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{output}"'))
    config = tmp_path / "recsys.yaml"
    config.write_text(f"warehouse: {{source_schema: {source}, output_schema: {output}}}\n", encoding="utf-8")
    url = pg_engine.url.render_as_string(hide_password=False)
    try:
        assert cli.main(["grant-reader", "--url", url, "--config", str(config)]) == 0
        with pg_engine.begin() as conn:  # a stray grant on the behaviour table is revoked by a rerun
            conn.execute(sa.text(f'GRANT USAGE ON SCHEMA "{source}" TO recsys_reader'))
            conn.execute(sa.text(f'GRANT SELECT ON "{source}".events TO recsys_reader'))
        assert cli.main(["grant-reader", "--url", url, "--config", str(config)]) == 0  # idempotent
        stamp = datetime(2026, 2, 1, 3, tzinfo=UTC)
        rows = [RecommendationRow(AS_OF, "u1", 1, "a", 1.0, "m", "r", "trending now", stamp)]
        write_publication(pg_engine, output, iter(rows), as_of=AS_OF, run_id="r", model_version="m", top_k=1)
        write_similar_items(pg_engine, output, iter([SimilarItemRow(AS_OF, "a", 1, "b", 0.9, "m")]), as_of=AS_OF)
        with pg_engine.connect() as conn:
            conn.execute(sa.text("SET ROLE recsys_reader"))
            assert conn.execute(sa.text(f'SELECT user_id, item_id FROM "{output}".latest_recommendations')).all() == [("u1", "a")]
            # similar_items was created before the grant, its new partition after: both readable
            assert conn.execute(sa.text(f'SELECT count(*) FROM "{output}".latest_similar_items')).scalar() == 1
            with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
                conn.execute(sa.text(f'SELECT count(*) FROM "{source}".events'))
            conn.rollback()
            conn.execute(sa.text("RESET ROLE"))
    finally:
        with pg_engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{output}" CASCADE'))
            conn.execute(sa.text(f'REVOKE ALL ON SCHEMA "{source}" FROM recsys_reader'))


def test_grant_reader_refuses_sqlite(sqlite_url, capsys):
    assert cli.main(["grant-reader", "--url", sqlite_url]) == 2
    assert "PostgreSQL only" in capsys.readouterr().err


def test_reader_role_name_is_validated():
    with pytest.raises(ValueError, match="publish.reader_role"):
        RecsysConfig.from_mapping({"publish": {"reader_role": "reader; DROP TABLE x"}})


def test_similar_items_examples_run_on_the_embedded_warehouse(sqlite_url):
    from recsys_tasks.data import sources
    from recsys_tasks.sqlfiles import SQL_DIR

    engine = warehouse.create_engine(sqlite_url)
    try:
        ensure_output_schema(engine, "recsys")
        shop = SHOP.copy()
        shop.loc[shop["user_id"] == "buyer", "user_id"] = "u000042"
        items = _items()
        items.loc[items["item_id"] == "a", "item_id"] = "i00007"
        shop.loc[shop["item_id"] == "a", "item_id"] = "i00007"
        sources.load(engine, shop, items)
        vocab = ItemVocab(items["item_id"].tolist())
        write_similar_items(engine, "recsys", similar_item_rows(VECTORS, vocab, n=3, as_of=AS_OF, model_version="m"), as_of=AS_OF)
        for_item = cli.run_query(engine, (SQL_DIR / "examples" / "similar_items_for_item.sql").read_text())
        assert "Title B" in for_item[0] and "(3 rows)" in for_item[0]
        shelf = cli.run_query(engine, (SQL_DIR / "examples" / "similar_to_recently_viewed.sql").read_text())
        # u000042 viewed i00007 (a) and b; their top-3 neighbours are {b, g, c} and {i00007, g, c}:
        # without the viewed items that leaves g (0.995) and c (0.993).
        lines = shelf[0].splitlines()
        assert [line.split()[0] for line in lines[2:-1]] == ["g", "c"] and lines[-1] == "(2 rows)"
    finally:
        engine.dispose()


def test_pipeline_publishes_the_champions_similar_items_and_rules_driven_lists(tmp_path, sqlite_url):
    """The two pipeline stages on a registered (untrained, 8-item) transformer champion."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from recsys_tasks import stages
    from recsys_tasks.config import ModelConfig
    from recsys_tasks.data.snapshot import EVENTS_SCHEMA, ITEMS_SCHEMA
    from recsys_tasks.modeling.artifacts import build_model, save_model
    from recsys_tasks.registry import directory_checksum, promote, register_model

    cfg = RecsysConfig.from_mapping({"artifact_root": str(tmp_path / "artifacts"), "train": {"device": "cpu"},
                                     "publish": {"top_k": 3, "similar_items_n": 2}})
    ctx = stages.context.RunContext("recsys_retrain", "run-1", datetime(2026, 1, 31, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC),
                              sqlite_url, cfg)
    model_cfg = ModelConfig(hidden_size=8, num_layers=1, num_heads=2, max_len=8, use_item_text=False)
    vocab = ItemVocab(ITEMS)
    model_dir = save_model(tmp_path / "model", kind="transformer", vocab=vocab, popularity=np.ones(len(vocab)),
                           model=build_model("transformer", model_cfg, len(vocab)), model_cfg=model_cfg)
    ensure_output_schema(ctx.engine, ctx.schema)
    register_model(ctx.engine, ctx.schema, model_version="m1", parent_version=None, kind="transformer", dag_id="d",
                   run_id="r", as_of=AS_OF, data_start=datetime(2026, 1, 1, tzinfo=UTC), data_end=datetime(2026, 1, 31, tzinfo=UTC),
                   artifact_uri=str(model_dir), checksum=directory_checksum(model_dir), config={})
    promote(ctx.engine, ctx.schema, "m1", decision="test")
    snapshot = tmp_path / "clean"
    snapshot.mkdir()
    pq.write_table(pa.Table.from_pandas(SHOP, schema=EVENTS_SCHEMA, preserve_index=False), snapshot / "events.parquet")
    items = _items()
    pq.write_table(pa.Table.from_pandas(items[items["item_id"] != "g"], schema=ITEMS_SCHEMA, preserve_index=False),
                   snapshot / "items.parquet")
    try:
        similar = stages.similar_items.run(ctx, str(snapshot))
        assert similar == {"as_of": "2026-02-01", "model_version": "m1", "items": 7, "rows": 14, "n": 2}
        with ctx.engine.connect() as conn:
            listed = conn.execute(sa.text("SELECT item_id, similar_item_id FROM recsys.latest_similar_items")).all()
        assert {i for i, _ in listed} == set(ITEMS) - {"g"} and all(i != s and s != "g" for i, s in listed)
        published = stages.publish.run(ctx, str(snapshot))
        assert (published["users"], published["rows"]) == (5, 15)  # users with item events; "searcher" has none
        with ctx.engine.connect() as conn:
            reasons = dict(conn.execute(sa.text(
                "SELECT user_id, group_concat(reason, '|') FROM recsys.latest_recommendations GROUP BY user_id"
            )).all())
        assert reasons["cold"].split("|")[:2] == ["trending in tents", "trending in tents"]
        assert all(r.startswith(("similar to ", "new in ")) for r in reasons["buyer"].split("|"))
    finally:
        ctx.dispose()
