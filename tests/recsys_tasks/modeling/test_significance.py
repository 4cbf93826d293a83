"""Significance-gated promotion: the paired bootstrap by hand, noise vs a real effect, the stored interval."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest

from recsys_tasks.config import EvaluationConfig
from recsys_tasks.data.warehouse import ensure_output_schema
from recsys_tasks.modeling.evaluation import Scores
from recsys_tasks.modeling.promotion import compare, decide, load_comparisons, store_comparisons
from recsys_tasks.modeling.significance import paired_bootstrap, resample_indices
from recsys_tasks.registry import ModelRecord

END = datetime(2026, 1, 10, tzinfo=UTC)


def _champion() -> ModelRecord:
    end = END - timedelta(days=1)
    return ModelRecord(
        model_version="m-champ", parent_version=None, kind="transformer", status="champion", dag_id="d", run_id="r",
        as_of=end.date(), data_start=end - timedelta(days=30), data_end=end, artifact_uri="/m", checksum="x",
        config={}, metrics={}, holdout_users=100, decision="first model",
    )


def _scores(values: np.ndarray) -> Scores:
    values = np.asarray(values, dtype=np.float64)
    return Scores({"all": {"ndcg@10": float(values.mean()), "users": float(values.size)}}, {"ndcg@10": values})


def _judge(challenger: np.ndarray, champion: np.ndarray, cfg: EvaluationConfig):
    """decide() against a champion, with most-popular far below both, as the evaluate stage calls it."""
    ch, cur, base = _scores(challenger), _scores(champion), _scores(np.zeros_like(champion))
    return decide(
        cfg=cfg, challenger="m-new", challenger_metrics=ch["all"], baseline_metrics=base["all"], champion=_champion(),
        champion_metrics=cur["all"], challenger_data_end=END, holdout_users=len(challenger),
        vs_champion=compare(ch, cur, reference_version="m-champ", reference_role="champion", cfg=cfg),
        vs_baseline=compare(ch, base, reference_version="most_popular", reference_role="baseline", cfg=cfg),
    )


def _synthetic(n: int, effect: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-user NDCG@10 of a champion and a challenger whose expected value is ``effect`` higher (relative).

    Each user's champion value is a leave-one-out NDCG (a hit at a uniform rank 1-10 with p = 0.35);
    the challenger scores the same user ``(1 + effect)`` times that, plus noise of its own, centred so
    that the sample's relative gain is exactly ``effect``.
    """
    rng = np.random.default_rng(seed)
    hit = rng.random(n) < 0.35
    champion = np.where(hit, 1.0 / np.log2(rng.integers(1, 11, size=n) + 1.0), 0.0)
    noise = rng.normal(0.0, 0.05, size=n)
    return champion * (1.0 + effect) + noise - noise.mean(), champion


def test_a_one_percent_gain_on_50_users_is_kept_and_ten_percent_on_5000_is_promoted():
    # No margin at all: only the noise can keep the 1% challenger out.
    cfg = EvaluationConfig(min_relative_improvement=0.0, min_holdout_users=20)
    small = _judge(*_synthetic(50, 0.01, seed=1), cfg)
    assert small.outcome == "keep", small.reason
    assert small.judged_against["low"] < 0.0 < small.judged_against["high"]
    assert "+1.0% [" in small.reason and "its lower bound must clear evaluation.min_relative_improvement=+0.0%" in small.reason
    # The default 1% margin, and a real 10% effect on 5,000 users.
    big = _judge(*_synthetic(5000, 0.10, seed=2), EvaluationConfig())
    assert big.outcome == "promote", big.reason
    assert 0.01 < big.judged_against["low"] < 0.10 < big.judged_against["high"]
    assert big.judged_against["n"] == 5000 and "+10.0% [" in big.reason and ", 95%, n = 5,000" in big.reason


def test_an_exact_relative_gain_gives_a_point_interval_and_the_margin_decides():
    # challenger = 1.033 x champion for every user: every resample has the same relative gain (up to
    # the 6-decimal rounding of the per-user values).
    champion = _synthetic(400, 0.0, seed=3)[1] + 0.01
    cfg = EvaluationConfig(min_relative_improvement=0.05, min_holdout_users=20)
    below = _judge(champion * (0.31 / 0.30), champion, cfg)
    assert below.judged_against["low"] == pytest.approx(1 / 30, abs=1e-5) == below.judged_against["high"]
    assert below.outcome == "keep" and "+3.3% [+3.3%, +3.3%], 95%, n = 400" in below.reason
    above = _judge(champion * (0.32 / 0.30), champion, cfg)
    assert above.outcome == "promote" and "+6.7% [+6.7%, +6.7%]" in above.reason


def _hand_bootstrap(a: list[float], b: list[float], indices: np.ndarray, confidence: float) -> tuple[float, float, float]:
    """The relative gain and its percentile interval, computed with plain Python over the given resamples."""
    n = len(a)
    ratios = []
    for row in indices.tolist():
        mean_a = sum(a[i] for i in row) / n
        mean_b = sum(b[i] for i in row) / n
        ratios.append((mean_a - mean_b) / mean_b if mean_b else (math.inf if mean_a > 0 else 0.0))
    ratios.sort()
    r = len(ratios)
    tail = (1 - confidence) / 2
    low = ratios[math.ceil(round(tail * r, 9)) - 1]  # the inverted empirical CDF: smallest value with CDF >= q
    high = ratios[math.ceil(round((1 - tail) * r, 9)) - 1]
    return (sum(a) / n - sum(b) / n) / (sum(b) / n), low, high


TINY_A = [1.0, 0.5, 0.0, 1.0, 0.630930, 0.0, 0.5]
TINY_B = [0.5, 0.5, 0.0, 1.0, 0.0, 0.386853, 0.5]


def test_the_interval_matches_a_hand_computed_bootstrap():
    indices = resample_indices(len(TINY_A), 400, seed=11)
    assert indices.shape == (400, 7) and indices.min() >= 0 and indices.max() == 6
    relative, low, high = _hand_bootstrap(TINY_A, TINY_B, indices, 0.9)
    interval = paired_bootstrap(np.array(TINY_A), np.array(TINY_B), confidence=0.9, resamples=400, seed=11)
    assert (interval.relative, interval.low, interval.high) == pytest.approx((relative, low, high), abs=1e-12)
    assert interval.n == 7 and interval.confidence == 0.9
    assert low < relative < high
    # Another seed draws other users, so the bounds move (the seed is part of what is stored).
    other = paired_bootstrap(np.array(TINY_A), np.array(TINY_B), confidence=0.9, resamples=400, seed=12)
    assert (other.low, other.high) != (interval.low, interval.high)


def test_a_resample_without_any_reference_hit_counts_as_an_unbounded_gain():
    interval = paired_bootstrap(np.array([1.0, 0.0]), np.array([0.0, 0.0]), resamples=200, seed=0)
    assert interval.relative == math.inf and interval.high == math.inf
    assert interval.text().startswith("+inf% [")


def test_decision_text_and_stored_interval_match_the_hand_computed_bootstrap(pg_engine, pg_schema):
    ensure_output_schema(pg_engine, pg_schema)
    cfg = EvaluationConfig(min_relative_improvement=0.0, min_holdout_users=5, bootstrap_resamples=300, bootstrap_seed=5)
    ch, base = _scores(np.array(TINY_A)), _scores(np.array(TINY_B))
    vs_baseline = compare(ch, base, reference_version="most_popular", reference_role="baseline", cfg=cfg)
    decision = decide(
        cfg=cfg, challenger="m-new", challenger_metrics=ch["all"], baseline_metrics=base["all"], champion=None,
        champion_metrics=None, challenger_data_end=END, holdout_users=7, vs_baseline=vs_baseline,
    )
    relative, low, high = _hand_bootstrap(TINY_A, TINY_B, resample_indices(7, 300, seed=5), 0.95)
    expected = f"{relative:+.1%} [{low:+.1%}, {high:+.1%}], 95%, n = 7"
    assert f"ndcg@10 0.5187 vs most-popular 0.4124: {expected}" in decision.reason, (decision.reason, expected)
    assert low < 0 < relative  # better on average, but 7 users cannot tell
    # A first model only has to beat most-popular (there is nothing to publish otherwise); the
    # decision states how uncertain that is.
    assert decision.outcome == "promote" and decision.reason.startswith("first model: ndcg@10")

    store_comparisons(pg_engine, pg_schema, run_id="run-1", as_of=date(2026, 1, 10), challenger="m-new", comparisons=[vs_baseline])
    store_comparisons(pg_engine, pg_schema, run_id="run-1", as_of=date(2026, 1, 10), challenger="m-new", comparisons=[vs_baseline])
    [stored] = load_comparisons(pg_engine, pg_schema, run_id="run-1", challenger="m-new")  # a retry replaced, not doubled
    assert (stored.interval.relative, stored.interval.low, stored.interval.high) == pytest.approx((relative, low, high), abs=1e-12)
    assert (stored.interval.n, stored.interval.confidence, stored.reference_role) == (7, 0.95, "baseline")
    # The stored per-user values, seed and resamples recompute exactly the stored interval.
    again = paired_bootstrap(stored.challenger_values, stored.reference_values, confidence=stored.interval.confidence,
                             resamples=stored.interval.resamples, seed=stored.interval.seed)
    assert again == stored.interval
