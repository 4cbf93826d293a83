"""The snapshot read in chunks of whole users gives what the whole frame gives, in a few flat arrays."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recsys_tasks.data.event_window import read_event_window
from recsys_tasks.data.sequences import ItemVocab, Ragged, build_sequences, temporal_split
from recsys_tasks.data.snapshot import EVENTS_SCHEMA
from recsys_tasks.data.user_chunks import grouped_by_user, user_chunks
from recsys_tasks.modeling.evaluation import build_holdout, holdout_of

CUTOFF = datetime(2026, 1, 20, tzinfo=UTC)
TYPES = ["view", "click", "cart", "purchase", "search", "rate"]


def _events(seed: int = 0, users: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(users):
        for _ in range(int(rng.integers(0, 12))):
            kind = TYPES[int(rng.integers(len(TYPES)))]
            item = None if kind == "search" and rng.random() < 0.5 else f"i{int(rng.integers(30))}"
            # whole hours over 30 days: ties in time happen, and the event id breaks them
            ts = pd.Timestamp("2026-01-01", tz="UTC") + pd.Timedelta(hours=int(rng.integers(0, 30 * 24)))
            rows.append((f"e{len(rows):05d}", f"u{u:03d}", item, kind, ts))
    frame = pd.DataFrame(rows, columns=["event_id", "user_id", "item_id", "event_type", "event_ts"])
    frame["value"], frame["query"], frame["session_id"] = np.nan, None, None
    return frame


def _write(frame: pd.DataFrame, path, *, grouped: bool = True):
    # grouped: as extraction writes it (by user, time-ordered within a user); else by time only, users interleaved
    frame = frame.sort_values(["user_id", "event_ts"] if grouped else ["event_ts"], kind="stable")
    pq.write_table(pa.Table.from_pandas(frame, schema=EVENTS_SCHEMA, preserve_index=False), path, row_group_size=17)
    return path


@pytest.mark.parametrize("chunk_rows", [1, 7, 1000])
@pytest.mark.parametrize("grouped", [True, False])
def test_window_equals_the_whole_frame_split_and_sequences(tmp_path, chunk_rows, grouped):
    events = _events()
    path = _write(events, tmp_path / "events.parquet", grouped=grouped)
    assert grouped_by_user(path) is grouped
    window = read_event_window(path, cutoff=CUTOFF, items_per_user=2, chunk_rows=chunk_rows)

    split = temporal_split(events, CUTOFF, items_per_user=2)
    vocab = ItemVocab(sorted(set(split.train_events["item_id"].dropna())))
    assert sorted(window.train_item_ids) == vocab.item_ids
    expected, got = build_sequences(split.train_events, vocab), window.encode(vocab)
    assert isinstance(got.items, Ragged)
    assert got.user_ids == expected.user_ids
    for name in ("items", "event_types", "timestamps"):
        for a, b in zip(getattr(got, name), getattr(expected, name), strict=True):
            assert a.tolist() == b.tolist()

    old, new = build_holdout(split), holdout_of(window)
    assert new.user_ids == old.user_ids and new.targets == old.targets
    assert new.history_lengths.tolist() == old.history_lengths.tolist()
    assert new.new_item_users.tolist() == old.new_item_users.tolist()
    # a model that knows only some items: the unknown ones are dropped from the histories, as before
    partial = ItemVocab(vocab.item_ids[::2])
    for a, b in zip(new.histories(partial).items, old.histories(partial).items, strict=True):
        assert a.tolist() == b.tolist()


def test_histories_of_users_without_events_before_the_cutoff_are_empty(tmp_path):
    events = _events(seed=1)
    path = _write(events, tmp_path / "events.parquet")
    window = read_event_window(path, cutoff=CUTOFF, chunk_rows=5)
    vocab = ItemVocab(sorted(window.train_item_ids))
    users = ["nobody", window.sequences.user_ids[3], "zz-late"]
    got = window.encode(vocab, users=users)
    assert got.user_ids == users
    assert [len(s) for s in got.items] == [0, len(window.sequences.items[3]), 0]
    assert window.history_lengths(users).tolist() == [0, len(window.sequences.items[3]), 0]


def test_chunks_hold_whole_users_and_every_row_once(tmp_path):
    events = _events(seed=2)
    path = _write(events, tmp_path / "events.parquet")
    chunks = list(user_chunks(path, columns=["user_id", "event_id"], chunk_rows=10))
    assert len(chunks) > 3
    assert all(list(c.columns) == ["user_id", "event_id"] for c in chunks)
    owners = [set(c["user_id"]) for c in chunks]
    assert all(not (a & b) for i, a in enumerate(owners) for b in owners[i + 1 :])
    assert sorted(pd.concat(chunks)["event_id"]) == sorted(events["event_id"])


def test_an_empty_snapshot_is_an_empty_window(tmp_path):
    path = _write(_events().iloc[:0], tmp_path / "events.parquet")
    window = read_event_window(path, cutoff=CUTOFF)
    assert len(window.sequences) == 0 and len(window.holdout) == 0
    assert len(holdout_of(window)) == 0
