"""Chunked full-catalogue evaluation in torch: the same ranks as the numpy reference, by hand too."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recsys_tasks.modeling.full_ranking import draw_unseen, leave_one_out_metrics, sampled_ranks
from recsys_tasks.modeling.metrics import rank_of_targets, target_ranks


def test_target_ranks_by_hand_ties_and_nan_count_against_the_target():
    scores = torch.tensor([
        [float("-inf"), 0.9, 0.1, 0.5, 0.5],  # target 3 ties with 4: rank 3
        [float("-inf"), float("nan"), 0.2, 0.3, 0.1],  # NaN ranks last: target 2 is second
    ])
    assert target_ranks(scores, torch.tensor([3, 2])).tolist() == [3, 2]
    assert rank_of_targets(scores.numpy(), np.array([3, 2])).tolist() == [3, 2]


def test_sampled_rank_uses_every_unseen_item_when_there_are_few():
    scores = torch.tensor([[float("-inf"), 0.9, 0.1, 0.5, 0.7, 0.2]])
    seen = torch.tensor([[False, True, False, False, False, False]])  # item 1 was in the history
    gen = torch.Generator().manual_seed(0)
    # target 3 (0.5) against unseen 2 (0.1), 4 (0.7), 5 (0.2): only item 4 beats it -> rank 2
    assert sampled_ranks(scores, torch.tensor([3]), seen | (torch.arange(6) == 3), num_sampled=100,
                         generator=gen).tolist() == [2]


def test_sampled_negatives_are_distinct_unseen_and_uniform():
    v, n = 50, 10
    seen = torch.zeros(2000, v, dtype=torch.bool)
    seen[:, 1:11] = True  # items 1..10 in every history
    scores = torch.arange(v, dtype=torch.float32).expand(2000, v).clone()  # item i scores i
    targets = torch.full((2000,), 30)
    gen = torch.Generator().manual_seed(1)
    ranks = sampled_ranks(scores, targets, seen | (torch.arange(v) == 30), num_sampled=n, generator=gen)
    # negatives are uniform over the 38 unseen items 11..49 but 30, of which 19 (31..49) beat item 30:
    # rank - 1 is hypergeometric with mean n * 19 / 38 = 5
    assert ranks.max() <= n + 1
    assert (ranks - 1).float().mean().item() == pytest.approx(5.0, abs=0.15)


def test_metrics_match_the_numpy_reference_across_chunks():
    rng = np.random.default_rng(0)
    users, v = 700, 300
    all_scores = torch.from_numpy(rng.normal(size=(users, v)).astype(np.float32))
    all_scores[:, 0] = float("-inf")
    targets = rng.integers(1, v, size=users)
    histories = [np.append(rng.integers(1, v, size=5), t) for t in targets]
    out = leave_one_out_metrics(lambda pos: all_scores[pos], histories, targets, num_items=v, k=10, chunk=128)
    ranks = rank_of_targets(all_scores.numpy(), targets).astype(float)
    assert out["hr@10"] == pytest.approx(float((ranks <= 10).mean()))
    assert out["ndcg@10"] == pytest.approx(float(np.where(ranks <= 10, 1 / np.log2(ranks + 1), 0).mean()))
    top = np.argsort(-all_scores.numpy(), axis=1)[:, :10]
    assert out["coverage@10"] == pytest.approx(len(np.unique(top)) / (v - 1))
    # random scores: the target beats about half of 100 sampled items
    assert 0.05 < out["sampled_hr@10"] < 0.2


@pytest.mark.parametrize(("v", "history"), [(1_000, 20), (30, 22)])  # the fast path, and the fallback
def test_draw_unseen_gives_distinct_unseen_items(v, history):
    gen = torch.Generator().manual_seed(2)
    seen = torch.zeros(300, v, dtype=torch.bool)
    for row in seen:
        row[torch.randperm(v - 1, generator=gen)[:history] + 1] = True
    drawn, real = draw_unseen(seen, 10, gen)
    expected = min(10, v - 1 - history)
    assert (real.sum(dim=1) == expected).all()
    for row, mask, s in zip(drawn, real, seen, strict=True):
        picked = row[mask]
        assert len(set(picked.tolist())) == expected and (picked > 0).all() and not s[picked].any()
    # uniform: every unseen item of the first row is about equally likely across many draws
    counts = torch.zeros(v)
    for _ in range(200):
        d, r = draw_unseen(seen[:1], 10, gen)
        counts.index_add_(0, d[r], torch.ones(int(r.sum())))
    unseen_counts = counts[~seen[0] & (torch.arange(v) > 0)]
    # a uniform draw spreads counts like Poisson(mean): coefficient of variation about 1 / sqrt(mean)
    mean = unseen_counts.mean()
    assert unseen_counts.std() / mean < 1.25 / mean.sqrt()
    low, high = unseen_counts.chunk(2)
    assert abs(low.mean() - high.mean()) < 0.2 * mean  # no lean towards low or high ids
