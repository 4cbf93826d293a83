"""Ranking metrics against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recsys_tasks.modeling.metrics import coverage, metrics_from_ranks, per_user_metrics, rank_of_targets


def ranking_metrics(ranked, relevant, *, k):
    """Mean of each per-user metric, as evaluation reports it."""
    return {name: float(values.mean()) for name, values in per_user_metrics(ranked, relevant, k=k).items()}


def test_single_relevant_item_matches_textbook_leave_one_out():
    # user 0: hit at rank 2; user 1: hit at rank 1; user 2: miss (relevant item not in the top 3)
    ranked = [[5, 7, 9], [3, 1, 2], [4, 6, 8]]
    relevant = [[7], [3], [1]]
    per_user = per_user_metrics(ranked, relevant, k=3)
    assert per_user["hr@3"].tolist() == [1.0, 1.0, 0.0]
    assert per_user["mrr@3"].tolist() == [0.5, 1.0, 0.0]
    m = ranking_metrics(ranked, relevant, k=3)
    assert m["hr@3"] == pytest.approx(2 / 3)
    assert m["ndcg@3"] == pytest.approx((1 / math.log2(3) + 1.0) / 3)
    assert m["mrr@3"] == pytest.approx((1 / 2 + 1) / 3)


def test_two_relevant_items_normalise_by_ideal_dcg():
    # hits at ranks 1 and 3, ideal = ranks 1 and 2
    m = ranking_metrics([[1, 9, 2]], [[1, 2]], k=3)
    dcg = 1.0 + 1 / math.log2(4)
    idcg = 1.0 + 1 / math.log2(3)
    assert m["ndcg@3"] == pytest.approx(dcg / idcg)
    assert m["hr@3"] == 1.0
    assert m["mrr@3"] == 1.0


def test_cutoff_ignores_hits_below_k():
    m = ranking_metrics([[1, 2, 3]], [[3]], k=2)
    assert m == {"hr@2": 0.0, "ndcg@2": 0.0, "mrr@2": 0.0}


def test_rank_of_targets_counts_ties_against_the_target():
    scores = np.array([[0.1, 0.5, 0.3, 0.5], [0.9, 0.2, 0.1, 0.0]])
    # row 0: target index 1 scores 0.5, tied with index 3 -> rank 2; row 1: target 0 is best -> rank 1
    assert rank_of_targets(scores, np.array([1, 0])).tolist() == [2, 1]


def test_metrics_from_ranks_by_hand():
    m = metrics_from_ranks(np.array([1, 3, 11]), k=10)
    assert m["hr@10"] == pytest.approx(2 / 3)
    assert m["ndcg@10"] == pytest.approx((1.0 + 0.5) / 3)  # 1/log2(4) = 0.5
    assert m["mrr@10"] == pytest.approx((1.0 + 1 / 3) / 3)


def test_coverage_counts_distinct_items_in_top_k():
    assert coverage([[1, 2, 3], [2, 4, 5]], catalogue_size=10, k=2) == pytest.approx(3 / 10)


def test_nan_and_inf_scores_rank_last_never_first():
    from recsys_tasks.modeling.metrics import rank_of_targets

    scores = np.array([[np.nan, np.nan, np.nan, 1.0, 0.5], [0.1, np.inf, 0.3, 0.2, -np.inf]])
    ranks = rank_of_targets(scores, np.array([1, 1]))
    assert ranks.tolist() == [5, 5]  # a broken target score is last, tied with every other broken one
    metrics = metrics_from_ranks(ranks, k=3)
    assert metrics == {"hr@3": 0.0, "ndcg@3": 0.0, "mrr@3": 0.0}


def test_non_finite_metrics_are_refused_with_a_name():
    from recsys_tasks.modeling.metrics import NonFiniteMetric, require_finite

    assert require_finite({"ndcg@10": 0.1}, what="x") == {"ndcg@10": 0.1}
    with pytest.raises(NonFiniteMetric, match=r"challenger m1: metrics \{'ndcg@10': inf\}"):
        require_finite({"ndcg@10": float("inf"), "hr@10": 1.0}, what="challenger m1")
