"""Business rules as pure functions on tiny arrays with hand-computed expectations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recsys_tasks.serving import rules as R

VIEW, CLICK, CART, BUY = 1, 2, 3, 4


def test_look_counts_count_views_and_clicks_of_each_candidate_per_user():
    items = [np.array([5, 5, 3, 5, 7]), np.array([], dtype=np.int64), np.array([3, 3])]
    kinds = [np.array([VIEW, CLICK, VIEW, BUY, CART]), np.array([], dtype=np.int64), np.array([CLICK, CLICK])]
    candidates = np.array([[5, 3, 7, 9], [5, 3, 7, 9], [3, 5, 0, 0]])
    # user 0: item 5 viewed + clicked (the purchase does not count), 3 viewed once, 7 only carted
    assert R.look_counts(items, kinds, candidates).tolist() == [[2, 1, 0, 0], [0, 0, 0, 0], [2, 0, 0, 0]]


def test_demote_adds_log_factor_at_or_above_the_threshold_only():
    scores = np.array([[3.0, 2.0, 1.0]], dtype=np.float32)
    looks = np.array([[2, 3, 5]])
    out = R.demote(scores, looks, after=3, factor=math.exp(-2))
    assert out[0].tolist() == pytest.approx([3.0, 0.0, -1.0])
    assert R.demote(scores, looks, after=None, factor=0.1) is scores
    assert R.demote(scores, looks, after=3, factor=0.0).tolist() == [[3.0, -math.inf, -math.inf]]


def test_demotion_reorders_the_list_as_configured():
    items = np.array([[10, 11, 12]])
    scores = np.array([[3.0, 2.5, 2.0]], dtype=np.float32)
    looks = np.array([[4, 0, 0]])  # item 10 seen 4 times without buying
    demoted = R.demote(scores, looks, after=3, factor=0.5)  # 3 + ln 0.5 = 2.307
    ranked, ranked_scores = R.sort_candidates(items, demoted)
    assert ranked.tolist() == [[11, 10, 12]]
    assert ranked_scores[0].tolist() == pytest.approx([2.5, 3 + math.log(0.5), 2.0])
    mild = R.sort_candidates(items, R.demote(scores, looks, after=5, factor=0.5))[0]
    assert mild.tolist() == [[10, 11, 12]]  # below the threshold: untouched


def test_sort_candidates_puts_padding_last_and_keeps_ties_in_order():
    items = np.array([[4, 0, 2, 9]])
    scores = np.array([[1.0, 5.0, 1.0, 2.0]], dtype=np.float32)
    ranked, ranked_scores = R.sort_candidates(items, scores)
    assert ranked.tolist() == [[9, 4, 2, 0]]
    assert ranked_scores[0, :3].tolist() == [2.0, 1.0, 1.0] and ranked_scores[0, 3] == -np.inf


def test_category_cap_keeps_at_most_n_per_category_and_fills_from_the_best_skipped():
    items = np.array([1, 2, 3, 4, 5, 6])
    cats = np.array([0, 0, 0, 1, -1, -1])  # two items of unknown category are never capped
    assert R.cap_per_category(items, cats, k=4, max_per_category=2).tolist() == [0, 1, 3, 4]
    assert R.cap_per_category(items, cats, k=4, max_per_category=None).tolist() == [0, 1, 2, 3]
    # Only 3 eligible under a cap of 1 (0, 1, and the unknowns): the best skipped (position 1) fills in.
    narrow = np.array([1, 2, 3, 4])
    assert R.cap_per_category(narrow, np.array([0, 0, 0, 1]), k=3, max_per_category=1).tolist() == [0, 1, 3]
    assert R.cap_per_category(np.array([7, 8, 0]), np.array([0, 1, -1]), k=3, max_per_category=1).tolist() == [0, 1]


def test_trending_counts_only_the_window_and_ranks_by_count():
    items = np.array([1, 2, 2, 3, 3, 3, 0, 2])
    ts = np.array([5, 10, 11, 12, 13, 14, 15, 25])
    counts = R.trending(items, ts, since=10, until=20, num_items=5)
    assert counts.tolist() == [0, 0, 2, 3, 0]
    assert R.ranked_by_count(counts).tolist() == [3, 2]
    assert R.ranked_by_count(counts, within=np.array([True, True, True, False, True])).tolist() == [2]


def test_infer_category_votes_over_item_events_and_searches_ties_to_the_latest():
    item_category = np.array([-1, 0, 0, 1, -1])  # items 1, 2 are "books", 3 is "tents"
    names = ["books", "tents"]
    assert R.infer_category(np.array([1, 3, 2]), item_category) == 0
    assert R.infer_category(np.array([1, 3]), item_category) == 1  # 1:1, tents is more recent
    assert R.infer_category(np.array([], dtype=np.int64), item_category, queries=["2 person Tents"], category_names=names) == 1
    assert R.infer_category(np.array([4]), item_category, queries=["cheap"], category_names=names) == R.UNKNOWN


def test_cold_start_list_prefers_the_category_then_global_trending_then_fallback():
    counts = np.array([0, 9, 1, 5, 7, 0, 0], dtype=np.float64)
    cats = np.array([-1, 0, 1, 1, 0, 1, 1])
    items, scores, source = R.cold_start_list(k=5, category=1, trending_counts=counts, item_category=cats,
                                              exclude={2}, fallback=np.array([6, 1, 5]))
    # category 1 trending: 3 (5), 2 (1, excluded); then global: 1 (9), 4 (7); then fallback 6, (1 taken), 5
    assert items.tolist() == [3, 1, 4, 6, 5]
    assert scores.tolist() == [5.0, 5.0, 5.0, 0.0, 0.0]  # counts 5, 9, 7, -, - capped to never rise with rank
    assert source.tolist() == [0, 1, 1, 2, 2]
    unknown, unknown_scores, flags = R.cold_start_list(k=2, category=R.UNKNOWN, trending_counts=counts, item_category=cats)
    assert unknown.tolist() == [1, 4] and unknown_scores.tolist() == [9.0, 7.0] and flags.tolist() == [1, 1]


def test_best_new_items_by_cosine_skipping_excluded():
    unit = R.normalise(np.array([[0, 0], [1, 0], [0, 1], [1, 1], [1, -1]], dtype=np.float32))
    profile = unit[[1, 2]]  # user 0 likes item 1's direction, user 1 item 2's
    new_items = np.array([3, 4])
    items, sims = R.best_new_items(profile, new_items, unit, exclude=np.array([[0], [3]]), slots=1)
    assert items.tolist() == [[3], [4]]  # user 0: both at 0.707, the lower index wins; user 1: 3 is excluded
    assert sims[:, 0].tolist() == pytest.approx([math.sqrt(0.5), -math.sqrt(0.5)])
    none, _ = R.best_new_items(profile, new_items, unit, exclude=np.array([[3, 4], [0, 0]]), slots=3)
    assert none.tolist() == [[0, 0, 0], [3, 4, 0]]  # user 1: 3 (cos 0.707) before 4 (-0.707)


def test_place_new_items_replaces_the_tail_of_a_full_list_and_extends_a_short_one():
    # items 1, 3 along x, 2 along y; new items 4 (almost x) and 5 (y)
    unit = R.normalise(np.array([[0, 0], [1, 0], [0, 1], [1, 0], [1, 0.1], [0, 1]], dtype=np.float32))
    is_new = np.array([False, False, False, False, True, True])
    top = np.array([[1, 2, 3], [2, 0, 0], [4, 1, 0]])
    scores = np.array([[3.0, 2.0, 1.0], [5.0, -np.inf, -np.inf], [4.0, 3.0, -np.inf]], dtype=np.float32)
    placed = R.place_new_items(
        top, scores, rows=np.array([0, 1, 2]), last_items=np.array([1, 2, 1]), is_new=is_new,
        new_items=np.array([4, 5]), unit_vectors=unit, slots=1,
    )
    # user 0 (full, last item 1): 4 replaces the last item at its score; user 1 (short, last item 2):
    # 5 is appended at the last score; user 2 already has a new item.
    assert top.tolist() == [[1, 2, 4], [2, 5, 0], [4, 1, 0]]
    assert scores.tolist() == [[3.0, 2.0, 1.0], [5.0, 5.0, -np.inf], [4.0, 3.0, -np.inf]]
    assert placed.tolist() == [[False, False, True], [False, True, False], [False, False, False]]


def test_top_neighbours_excludes_self_and_padding_and_orders_by_cosine():
    vectors = np.array([[0, 0], [1, 0], [0.9, 0.1], [0, 1], [-1, 0]], dtype=np.float32)
    unit = R.normalise(vectors)
    items, sims = R.top_neighbours(unit, np.array([1, 3]), n=3)
    assert items.tolist() == [[2, 3, 4], [2, 1, 4]]
    assert sims[0].tolist() == pytest.approx([0.9 / math.hypot(0.9, 0.1), 0.0, -1.0])
    eligible = np.array([False, True, False, True, True])
    items, sims = R.top_neighbours(unit, np.array([1]), n=4, eligible=eligible)
    assert items.tolist() == [[3, 4, 0, 0]] and sims[0, 2] == -np.inf


def test_most_similar_anchor_explains_by_the_closest_history_item():
    unit = R.normalise(np.array([[0, 0], [1, 0], [0, 1], [0.9, 0.2], [0.1, 1]], dtype=np.float32))
    anchors = np.array([[1, 2, 0]])
    assert R.most_similar_anchor(np.array([[3, 4]]), anchors, unit).tolist() == [[0, 1]]
    # A re-recommended history item is explained by another anchor, unless it is the only one.
    assert R.most_similar_anchor(np.array([[1, 2]]), anchors, unit).tolist() == [[1, 0]]
    assert R.most_similar_anchor(np.array([[1]]), np.array([[1, 0]]), unit).tolist() == [[0]]


def test_neighbours_computed_in_item_slices_equal_the_full_matrix():
    rng = np.random.default_rng(4)
    vectors = R.normalise(rng.normal(size=(23, 5)))
    vectors[0] = 0.0
    eligible = rng.random(23) > 0.2
    rows = np.array([1, 4, 9, 22])
    full = R.top_neighbours(vectors, rows, n=6, eligible=eligible, item_chunk=23)
    for item_chunk in (1, 2, 5, 7):
        items, sims = R.top_neighbours(vectors, rows, n=6, eligible=eligible, item_chunk=item_chunk)
        np.testing.assert_array_equal(items, full[0])
        np.testing.assert_allclose(sims, full[1], rtol=1e-6)
    assert not np.isin(full[0], np.flatnonzero(~eligible)[np.flatnonzero(~eligible) > 0]).any()
    assert all(r not in row for r, row in zip(rows, full[0], strict=True))
