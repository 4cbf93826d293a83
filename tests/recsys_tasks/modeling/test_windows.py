"""Training samples: windows by hand, and the replay share kept when fine-tuning."""

from __future__ import annotations

import numpy as np

from recsys_tasks.data.sequences import SequenceData
from recsys_tasks.modeling.windows import collate, prepare, replay_windows, training_windows


def test_training_windows_by_hand():
    # user 0 has 5 items: latest window items[2:5], then items[0:3] (targets 1,2 then 3,4 do not overlap)
    windows = training_windows(np.array([5, 1, 2]), max_len=2)
    assert windows.tolist() == [[0, 2, 5], [0, 0, 3], [2, 0, 2]]


def test_replay_keeps_every_latest_window_and_a_share_of_older_ones(tiny_model_cfg):
    items = [np.arange(1, 31), np.arange(1, 4)]
    kinds = [np.ones_like(s) for s in items]
    data = SequenceData(["a", "b"], items, kinds, [np.arange(len(s)) for s in items])
    prepared = prepare(data, tiny_model_cfg.model_copy(update={"max_len": 4}), seed=0)
    # user a: 29 training items (the 30th is validation) -> windows ending at 29, 25, 21, ..., 5
    assert len(prepared.windows) == 7 + 1
    none = replay_windows(prepared, 0.0, seed=0)
    assert none.tolist() == [[0, 24, 29], [1, 0, 2]]
    assert len(replay_windows(prepared, 1.0, seed=0)) == 8


def test_prepare_holds_out_the_last_item_and_collate_shifts_targets_by_one(tiny_model_cfg):
    items = [np.array([5, 6, 7, 8]), np.array([3, 4])]
    kinds = [np.full(len(s), 2) for s in items]
    data = SequenceData(["a", "b"], items, kinds, [np.arange(len(s)) * 60 for s in items])
    prepared = prepare(data, tiny_model_cfg, seed=0)
    # only "a" has 3+ items: its last item (8) is the validation target; "b" keeps both items
    assert prepared.val_users.tolist() == [0] and prepared.val_targets.tolist() == [8]
    assert [s.tolist() for s in prepared.items] == [[5, 6, 7], [3, 4]]
    x, ty, ga, y = collate(prepared, prepared.windows)
    assert x.tolist() == [[5, 6], [3, 0]]  # right padded
    assert y.tolist() == [[6, 7], [4, 0]]  # the next item; 0 is ignored by the loss
    assert ty.tolist() == [[2, 2], [2, 0]]
    assert (ga[x == 0] == 0).all() and (ga[x > 0] > 0).all()


def test_collate_gathers_exactly_the_windows_slices(tiny_model_cfg):
    rng = np.random.default_rng(3)
    items = [rng.integers(1, 50, size=n) for n in rng.integers(1, 40, size=60)]
    kinds = [rng.integers(1, 7, size=len(s)) for s in items]
    data = SequenceData([str(u) for u in range(60)], items, kinds, [np.sort(rng.integers(0, 10**6, size=len(s))) for s in items])
    prepared = prepare(data, tiny_model_cfg.model_copy(update={"max_len": 7}), seed=0)
    rows = prepared.windows[rng.permutation(len(prepared.windows))[:32]]
    x, ty, ga, y = (t.numpy() for t in collate(prepared, rows))
    for b, (u, s, e) in enumerate(rows):  # the slices, right padded with 0
        n = e - s - 1
        for got, want in ((x, prepared.items[u][s : e - 1]), (ty, prepared.types[u][s : e - 1]),
                          (ga, prepared.gaps[u][s : e - 1]), (y, prepared.items[u][s + 1 : e])):
            assert got[b, :n].tolist() == want.tolist() and not got[b, n:].any()


def _windows_one_user_at_a_time(lengths, max_len):
    """The definition: the latest window, then earlier ones whose targets stop where the later's begin."""
    rows = []
    for u, n in enumerate(lengths):
        end = int(n)
        while end >= 2:
            start = max(0, end - max_len - 1)
            rows.append((u, start, end))
            end = start + 1
    return rows


def test_training_windows_match_the_per_user_definition():
    rng = np.random.default_rng(0)
    for max_len in (1, 2, 5, 50):
        lengths = rng.integers(0, 130, size=200)
        assert training_windows(lengths, max_len).tolist() == [list(r) for r in _windows_one_user_at_a_time(lengths, max_len)]
    assert training_windows(np.zeros(0, dtype=np.int64), 5).shape == (0, 3)


def test_prepare_on_ragged_sequences_equals_prepare_on_lists(tiny_model_cfg):
    from recsys_tasks.data.sequences import Ragged
    from recsys_tasks.modeling.model import time_gap_buckets

    rng = np.random.default_rng(5)
    items = [rng.integers(1, 50, size=n) for n in rng.integers(0, 30, size=80)]
    kinds = [rng.integers(1, 7, size=len(s)) for s in items]
    times = [np.sort(rng.integers(0, 10**7, size=len(s))) for s in items]
    users = [str(u) for u in range(80)]
    as_lists = prepare(SequenceData(users, items, kinds, times), tiny_model_cfg, seed=1)
    ragged = SequenceData(users, Ragged.of(items, np.int32), Ragged.of(kinds, np.int8), Ragged.of(times))
    as_ragged = prepare(ragged, tiny_model_cfg, seed=1)
    assert as_ragged.windows.tolist() == as_lists.windows.tolist()
    assert as_ragged.val_users.tolist() == as_lists.val_users.tolist()
    assert as_ragged.val_targets.tolist() == as_lists.val_targets.tolist()
    for u in range(80):  # gaps: each user's own time_gap_buckets, first event in bucket 1
        full = time_gap_buckets(times[u], tiny_model_cfg.time_gap_buckets)
        kept = len(as_lists.items[u])
        assert as_ragged.gaps[u].tolist() == full[:kept].tolist()
        assert as_ragged.items[u].tolist() == items[u][:kept].tolist()
