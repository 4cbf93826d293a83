"""The synthetic sparse shop: the shape the benchmark of issue 17 needs, and a learnable signal."""

from __future__ import annotations

import numpy as np

from recsys_tasks.data.synth.sparse import sparse_shop, write_inter


def test_sparse_shop_has_the_asked_shape_and_is_reproducible(tmp_path):
    frame = sparse_shop(n_users=500, n_items=2_000, min_events=5, max_events=15, seed=3)
    per_user = frame.groupby("user").size()
    assert len(per_user) == 500
    assert per_user.min() >= 5 and per_user.max() <= 15
    assert frame.groupby("user")["ts"].apply(lambda s: s.is_monotonic_increasing).all()
    assert frame.equals(sparse_shop(n_users=500, n_items=2_000, seed=3))
    counts = frame["item"].value_counts().to_numpy()
    assert counts[0] > 20 * np.median(counts)  # a popular head and a long tail
    write_inter(frame, tmp_path / "shop.inter")
    assert (tmp_path / "shop.inter").read_text().splitlines()[0] == "user_id:token\titem_id:token\ttimestamp:float"


def test_the_previous_item_predicts_the_next_better_than_popularity():
    frame = sparse_shop(n_users=3_000, n_items=5_000, seed=0)
    prev = frame.groupby("user")["item"].shift()
    pairs = frame.assign(prev=prev).dropna()
    # the most common successor of each item, learned on the first half of the users
    users = pairs["user"].astype(int)
    fit, test = pairs[users < 1_500], pairs[users >= 1_500]
    best_next = fit.groupby("prev")["item"].agg(lambda s: s.value_counts().index[0])
    by_sequence = (test["prev"].map(best_next) == test["item"]).mean()
    by_popularity = (test["item"] == fit["item"].value_counts().index[0]).mean()
    assert by_sequence > 2 * by_popularity
