from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pandas as pd

from recsys_tasks.data.sequences import EVENT_TYPE_IDS, ItemVocab, build_sequences, temporal_split


def frame(rows):
    df = pd.DataFrame(rows, columns=["event_id", "user_id", "item_id", "event_type", "event_ts"])
    df["event_ts"] = pd.to_datetime(df["event_ts"], utc=True)
    for col in ("value", "query", "session_id"):
        df[col] = None
    return df


def test_vocab_only_grows_and_keeps_indices():
    vocab = ItemVocab(["a", "b"])
    assert vocab.encode(["a", "b", "zz"]).tolist() == [1, 2, 0]
    assert vocab.extend(["b", "c"]) == ["c"]
    assert vocab.encode(["a", "b", "c"]).tolist() == [1, 2, 3]
    assert ItemVocab.from_json(vocab.to_json()).item_ids == ["a", "b", "c"]
    assert len(vocab) == 4  # padding row included


def test_sequences_are_time_ordered_per_user_and_skip_searches():
    events = frame([
        ("e3", "u1", "b", "purchase", "2026-01-01 10:02"),
        ("e1", "u1", "a", "view", "2026-01-01 10:00"),
        ("e2", "u1", None, "search", "2026-01-01 10:01"),
        ("e4", "u2", "c", "click", "2026-01-01 09:00"),
        ("e5", "u2", "unknown", "click", "2026-01-01 09:30"),
    ])
    seqs = build_sequences(events, ItemVocab(["a", "b", "c"]), users=["u1", "u2", "u3"])
    assert seqs.user_ids == ["u1", "u2", "u3"]
    assert seqs.items[0].tolist() == [1, 2]
    assert seqs.event_types[0].tolist() == [EVENT_TYPE_IDS["view"], EVENT_TYPE_IDS["purchase"]]
    assert seqs.items[1].tolist() == [3]
    assert seqs.items[2].tolist() == []
    assert np.all(np.diff(seqs.timestamps[0]) > 0)


def test_temporal_split_has_no_leakage():
    events = frame([
        ("e1", "u1", "a", "view", "2026-01-01 10:00"),
        ("e2", "u1", "b", "view", "2026-01-01 12:00"),  # exactly at the cutoff: holdout
        ("e3", "u1", "c", "view", "2026-01-01 13:00"),
        ("e4", "u2", "a", "view", "2026-01-01 11:59"),
    ])
    cutoff = datetime(2026, 1, 1, 12, tzinfo=timezone.utc)
    split = temporal_split(events, cutoff, items_per_user=1)
    assert (split.train_events["event_ts"] < pd.Timestamp(cutoff)).all()
    assert split.train_events["event_id"].tolist() == ["e1", "e4"]
    assert split.holdout[["user_id", "item_id"]].values.tolist() == [["u1", "b"]]
    two = temporal_split(events, cutoff, items_per_user=2)
    assert two.holdout["item_id"].tolist() == ["b", "c"]
