"""The synthetic warehouse: shape and structure of the generated behaviour, and its bulk load."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import psycopg
import pytest
import sqlalchemy as sa

from recsys_tasks import cli
from recsys_tasks.config import EVENT_TYPES, WarehouseConfig
from recsys_tasks.data import sources, synth
from recsys_tasks.data.sequences import EVENT_COLUMNS, ITEM_COLUMNS
from recsys_tasks.sqlfiles import quote_identifier

START = datetime(2026, 1, 1, tzinfo=UTC)
END = datetime(2026, 1, 29, tzinfo=UTC)
PARAMS = dict(n_users=300, n_items=200, start=START, end=END, events_per_user_per_day=2.0)


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    return synth.generate(**PARAMS, seed=3)


def test_same_seed_same_frames_other_seed_other_frames(frames):
    events, items = frames
    again_events, again_items = synth.generate(**PARAMS, seed=3)
    pd.testing.assert_frame_equal(events, again_events)
    pd.testing.assert_frame_equal(items, again_items)
    other_events, _ = synth.generate(**PARAMS, seed=4)
    assert not events["item_id"].reset_index(drop=True).equals(other_events["item_id"].reset_index(drop=True))


def test_canonical_columns_and_types(frames):
    events, items = frames
    assert tuple(events.columns) == EVENT_COLUMNS
    assert tuple(items.columns) == ITEM_COLUMNS
    assert str(events["event_ts"].dt.tz) == "UTC"
    assert str(items["created_at"].dt.tz) == "UTC"
    assert events["event_id"].is_unique
    assert set(events["event_type"]) == set(EVENT_TYPES)
    # volume follows the requested rate (users with few sessions, truncated sessions: within 25 %)
    expected = PARAMS["n_users"] * 28 * PARAMS["events_per_user_per_day"]
    assert 0.75 * expected < len(events) < 1.25 * expected


def test_every_event_inside_the_window(frames):
    events, _ = frames
    assert events["event_ts"].min() >= pd.Timestamp(START)
    assert events["event_ts"].max() < pd.Timestamp(END)


def test_funnel_narrows_and_values_follow_the_contract(frames):
    events, _ = frames
    counts = events["event_type"].value_counts()
    assert counts["purchase"] < counts["add_to_cart"] < counts["click"] < counts["view"]
    value = events.set_index("event_type")["value"]
    assert value.loc[["view", "click", "search"]].isna().all()
    assert (value.loc[["add_to_cart", "purchase"]] > 0).all()
    assert set(value.loc["rate"].unique()) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    # a purchase costs what the item cost in the cart
    priced = events[events["event_type"].isin(["add_to_cart", "purchase"])]
    assert (priced.groupby("item_id")["value"].nunique() == 1).all()


def test_search_events_have_a_query_and_no_item(frames):
    events, items = frames
    search = events[events["event_type"] == "search"]
    assert len(search) > 0
    assert search["item_id"].isna().all()
    assert (search["query"].str.len() > 0).all()
    assert events.loc[events["event_type"] != "search", "query"].isna().all()
    assert events.loc[events["event_type"] != "search", "item_id"].notna().all()
    # queries use the catalogue's words, and the session then browses the category searched for
    vocabulary = {
        word.lower() for c in synth.CATEGORIES for text in (c.name, *c.nouns, *c.adjectives) for word in text.split()
    }
    assert all(set(q.split()) <= vocabulary | {"best"} for q in search["query"])
    category = items.set_index("item_id")["category"]
    first_view = events[events["event_type"] == "view"].groupby("session_id")["item_id"].first()
    pairs = search.join(first_view.rename("first_item"), on="session_id").dropna(subset=["first_item"])
    assert len(pairs) > 100
    matches = [
        any(w in q.split() for w in " ".join(_category_words(category[i])).lower().split())
        for q, i in zip(pairs["query"], pairs["first_item"], strict=True)
    ]
    assert np.mean(matches) > 0.8


def _category_words(name: str) -> list[str]:
    c = next(c for c in synth.CATEGORIES if c.name == name)
    return [c.name, *c.nouns, *c.adjectives]


def test_items_catalogue(frames):
    events, items = frames
    assert items["item_id"].is_unique
    assert items["title"].is_unique
    assert items["title"].str.match(r"^\S.*\S$").all()
    assert items["category"].notna().all()
    assert 20 <= items["category"].nunique() <= 40
    assert set(events["item_id"].dropna()) <= set(items["item_id"])
    # no event on an item before it existed
    first = events.dropna(subset=["item_id"]).groupby("item_id")["event_ts"].min()
    assert (items.set_index("item_id").loc[first.index, "created_at"] <= first).all()
    assert (items["created_at"] >= pd.Timestamp(START)).any()  # some cold-start items


def test_sessions_and_users(frames):
    events, _ = frames
    in_session = events[events["session_id"].notna()]
    assert events.loc[events["session_id"].isna(), "event_type"].eq("rate").all()
    assert in_session.groupby("session_id")["user_id"].nunique().eq(1).all()
    span = in_session.groupby("session_id")["event_ts"].agg(["min", "max"])
    assert (span["max"] - span["min"]).median() < pd.Timedelta(hours=1)
    assert events["user_id"].str.fullmatch(r"u\d{6}").all()
    assert events["item_id"].dropna().str.fullmatch(r"i\d{5}").all()


def test_item_popularity_is_skewed(frames):
    events, items = frames
    counts = events["item_id"].value_counts()
    top = counts.iloc[: len(items) // 10].sum()
    assert top / counts.sum() > 0.4


def test_previous_item_predicts_the_next_better_than_popularity(frames):
    """A first-order Markov model fit on the first 80 % of time beats most-popular on the last 20 %."""
    events, _ = frames
    views = events[events["event_type"] == "view"].sort_values(["user_id", "event_ts", "event_id"])
    pairs = pd.DataFrame(
        {"prev": views.groupby("user_id")["item_id"].shift(), "next": views["item_id"], "ts": views["event_ts"]}
    ).dropna()
    pairs = pairs[pairs["prev"] != pairs["next"]]
    cutoff = pd.Timestamp(START) + 0.8 * (pd.Timestamp(END) - pd.Timestamp(START))
    train, test = pairs[pairs["ts"] < cutoff], pairs[pairs["ts"] >= cutoff]
    assert len(test) > 500
    k = 10
    popular = views.loc[views["event_ts"] < cutoff, "item_id"].value_counts().index[:k].tolist()
    counts = train.groupby(["prev", "next"]).size().rename("n").reset_index()
    counts = counts.sort_values(["prev", "n", "next"], ascending=[True, False, True])
    markov = {prev: group["next"].tolist()[:k] for prev, group in counts.groupby("prev")}

    def topk(prev: str) -> list[str]:
        seen = markov.get(prev, [])
        return (seen + [p for p in popular if p not in seen])[:k]

    hr_markov = np.mean([nxt in topk(prev) for prev, nxt in zip(test["prev"], test["next"], strict=True)])
    hr_popular = np.mean([nxt in popular for nxt in test["next"]])
    assert hr_markov > hr_popular + 0.25, (hr_markov, hr_popular)


def test_interests_drift(frames):
    """Users' categories in the last week differ from their first week more than chance would have it."""
    events, items = frames
    ev = events.dropna(subset=["item_id"]).merge(items[["item_id", "category"]], on="item_id")
    first = ev[ev["event_ts"] < pd.Timestamp(START) + pd.Timedelta(days=7)]
    last = ev[ev["event_ts"] >= pd.Timestamp(END) - pd.Timedelta(days=7)]
    top_first = first.groupby("user_id")["category"].agg(lambda s: s.value_counts().index[0])
    top_last = last.groupby("user_id")["category"].agg(lambda s: s.value_counts().index[0])
    both = top_first.index.intersection(top_last.index)
    changed = (top_first[both] != top_last[both]).mean()
    assert 0.1 < changed < 0.9


# ------------------------------------------------------------------------------------------- load

NASTY_TITLE = 'Quote\'s "double" ; semi\ttab\nnew\\back\\\\slash \\N \u00e9t\u00e9 \u65e5\u672c \U0001f600\r'


def _with_nasty_row(events: pd.DataFrame, items: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    items = items.copy()
    items.loc[0, "title"] = NASTY_TITLE
    events = events.copy()
    events.loc[events.index[0], "query"] = NASTY_TITLE
    return events, items


def _read(engine: sa.Engine, table: str, order: str) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.read_sql(sa.text(f"SELECT * FROM {table} ORDER BY {order}"), conn)


def test_load_postgresql_round_trips_rows_exactly(frames, pg_engine, pg_schema):
    events, items = _with_nasty_row(*frames)
    warehouse = WarehouseConfig(source_schema=pg_schema)
    assert sources.load(pg_engine, events, items, warehouse=warehouse) == len(events)

    got_items = _read(pg_engine, quote_identifier(f"{pg_schema}.items"), "item_id")
    got_events = _read(pg_engine, quote_identifier(f"{pg_schema}.events"), "event_id")
    assert len(got_items) == len(items) and len(got_events) == len(events)
    pd.testing.assert_frame_equal(
        got_items.reset_index(drop=True), items.sort_values("item_id").reset_index(drop=True), check_dtype=False
    )
    assert got_items.loc[got_items["item_id"] == items.loc[0, "item_id"], "title"].item() == NASTY_TITLE
    expected = events.sort_values("event_id").reset_index(drop=True)
    for column in EVENT_COLUMNS:
        left, right = got_events[column], expected[column]
        if column == "event_ts":
            assert (pd.to_datetime(left, utc=True) == right).all()
        elif column == "value":
            np.testing.assert_array_equal(left.to_numpy(dtype=float), right.to_numpy(dtype=float))
        else:
            assert left.fillna("<null>").tolist() == right.fillna("<null>").tolist(), column


def test_load_postgresql_with_mapped_column_names(frames, pg_engine, pg_schema):
    events, items = frames
    warehouse = WarehouseConfig(
        source_schema=pg_schema,
        events_table="clickstream",
        event_columns={"event_ts": "occurred_at", "user_id": "customer"},
        item_columns={"title": "name"},
    )
    sources.load(pg_engine, events, items, warehouse=warehouse)
    with pg_engine.connect() as conn:
        row = conn.execute(
            sa.text(f'SELECT min("occurred_at"), count(DISTINCT "customer") FROM "{pg_schema}"."clickstream"')
        ).one()
        names = conn.execute(sa.text(f'SELECT count("name") FROM "{pg_schema}"."items"')).scalar_one()
    assert row[0] == events["event_ts"].min()
    assert row[1] == events["user_id"].nunique()
    assert names == len(items)


def test_load_replace_is_idempotent_and_without_replace_appends(frames, pg_engine, pg_schema):
    events, items = frames
    warehouse = WarehouseConfig(source_schema=pg_schema)
    for _ in range(2):
        sources.load(pg_engine, events, items, warehouse=warehouse, replace=True)
        assert _counts(pg_engine, f'"{pg_schema}".') == (len(events), len(items))
    # the warehouse does not deduplicate: a double load of events is possible (validation catches it)
    sources.load(pg_engine, events, items.iloc[:0], warehouse=warehouse)
    assert _counts(pg_engine, f'"{pg_schema}".') == (2 * len(events), len(items))


def test_failed_load_leaves_the_tables_as_they_were(frames, pg_engine, pg_schema):
    events, items = frames
    warehouse = WarehouseConfig(source_schema=pg_schema)
    sources.load(pg_engine, events, items, warehouse=warehouse)
    duplicate_items = pd.concat([items, items.iloc[:1]])  # violates the items primary key
    with pytest.raises(psycopg.errors.UniqueViolation):
        sources.load(pg_engine, events, duplicate_items, warehouse=warehouse, replace=True)
    assert _counts(pg_engine, f'"{pg_schema}".') == (len(events), len(items))


def test_load_sqlite_round_trips(frames, sqlite_url):
    events, items = _with_nasty_row(*frames)
    engine = sa.create_engine(sqlite_url)
    try:
        for _ in range(2):
            sources.load(engine, events, items, replace=True)
            assert _counts(engine, "") == (len(events), len(items))
        got = _read(engine, "events", "event_ts, event_id")
        got_items = _read(engine, "items", "item_id")
    finally:
        engine.dispose()
    # text order is time order, and pandas parses the timestamps back exactly
    parsed = pd.to_datetime(got["event_ts"], utc=True, format="ISO8601")
    assert parsed.is_monotonic_increasing
    expected = events.sort_values(["event_ts", "event_id"]).reset_index(drop=True)
    assert (parsed == expected["event_ts"]).all()
    assert got["event_id"].tolist() == expected["event_id"].tolist()
    assert got_items.loc[0, "title"] == NASTY_TITLE
    assert got["item_id"].isna().sum() == events["item_id"].isna().sum()


def test_load_rejects_frames_without_canonical_columns(frames, sqlite_url):
    events, items = frames
    engine = sa.create_engine(sqlite_url)
    with pytest.raises(sources.SynthDataError, match="event_ts"):
        sources.load(engine, events.drop(columns=["event_ts"]), items)
    engine.dispose()


def test_cli_loads_a_demo_warehouse(sqlite_url, caplog):
    caplog.set_level("INFO", logger="recsys_tasks.data")
    assert cli.main(["synth", "--url", sqlite_url, "--users", "20", "--items", "40", "--days", "3", "--replace"]) == 0
    engine = sa.create_engine(sqlite_url)
    n_events, n_items = _counts(engine, "")
    engine.dispose()
    assert n_items == 40 and n_events > 0
    assert "done in" in caplog.text


@pytest.mark.parametrize("option", [["--schema", "bad-name"], ["--end", "soon"]])
def test_cli_rejects_bad_options_before_generating(sqlite_url, option, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["synth", "--url", sqlite_url, *option])
    assert exit_.value.code == 2
    assert option[0] in capsys.readouterr().err


def _counts(engine: sa.Engine, prefix: str) -> tuple[int, int]:
    with engine.connect() as conn:
        n_events = conn.execute(sa.text(f"SELECT count(*) FROM {prefix}events")).scalar_one()
        n_items = conn.execute(sa.text(f"SELECT count(*) FROM {prefix}items")).scalar_one()
    return n_events, n_items
