"""Evaluation: per-segment metrics on a hand-built holdout, the promotion rule, and the evaluations table."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from recsys_tasks.config import EvaluationConfig
from recsys_tasks.data.sequences import EVENT_COLUMNS, ItemVocab, temporal_split
from recsys_tasks.data.warehouse import ensure_output_schema
from recsys_tasks.modeling.evaluation import Scores, build_holdout, score, store_evaluation
from recsys_tasks.modeling.promotion import compare, decide
from recsys_tasks.registry import ModelRecord

CUTOFF = datetime(2026, 1, 10, tzinfo=UTC)


def _events() -> pd.DataFrame:
    rows = []

    def add(user: str, item: str | None, kind: str, minutes: int) -> None:
        ts = CUTOFF + timedelta(minutes=minutes)
        rows.append((f"e{len(rows)}", user, item, kind, ts, None, "q" if item is None else None, "s"))

    # n1, n2: new users (nothing before the cutoff). n2's first item after the cutoff is f, not a.
    add("n1", "c", "view", 5)
    add("n2", "f", "view", 1)
    add("n2", "a", "view", 2)
    # s1: short history (2 item events before the cutoff).
    add("s1", "a", "view", -60)
    add("s1", "b", "click", -50)
    add("s1", "a", "view", 0)  # exactly at the cutoff: holdout, not training
    # l1: long history (5 item events; the search without an item does not count).
    for n, item in enumerate("abcde"):
        add("l1", item, "view", -100 + n)
    add("l1", None, "search", -10)
    add("l1", "b", "purchase", 30)
    # x: history but nothing after the cutoff: not in the holdout.
    add("x", "a", "view", -5)
    frame = pd.DataFrame(rows, columns=list(EVENT_COLUMNS))
    frame["event_ts"] = pd.to_datetime(frame["event_ts"], utc=True)
    return frame


class FakeRecommender:
    """Returns a fixed ranked list per user (looked up by the user id of each history row)."""

    def __init__(self, items: list[str], ranked: dict[str, list[str]]) -> None:
        self.vocab = ItemVocab(items)
        self.ranked = ranked
        self.seen: list[tuple[str, int]] = []

    def recommend(self, histories, *, k, exclude=None, batch_users=4096):
        assert exclude is None
        for start in range(0, len(histories), batch_users):
            users = histories.user_ids[start : start + batch_users]
            top = np.zeros((len(users), k), dtype=np.int64)
            for b, user in enumerate(users):
                self.seen.append((user, len(histories.items[start + b])))
                idx = self.vocab.encode(self.ranked[user][:k])
                top[b, : len(idx)] = idx
            yield start, top, np.where(top > 0, 1.0, -np.inf).astype(np.float32)


def test_holdout_is_built_from_the_first_item_after_the_cutoff():
    holdout = build_holdout(temporal_split(_events(), CUTOFF))
    assert holdout.user_ids == ["l1", "n1", "n2", "s1"]
    assert holdout.targets == [{"b"}, {"c"}, {"f"}, {"a"}]
    assert holdout.history_lengths.tolist() == [5, 0, 0, 2]


def test_score_gives_hand_computed_metrics_per_segment():
    holdout = build_holdout(temporal_split(_events(), CUTOFF))
    rec = FakeRecommender(
        list("abcdef"),
        {
            "n1": ["a", "b", "c"],  # target c at rank 3
            "n2": ["a", "b", "c"],  # target f missed
            "s1": ["a", "d", "e"],  # target a at rank 1
            "l1": ["d", "b", "a"],  # target b at rank 2
        },
    )
    out = score(rec, holdout, k=3, batch_users=3)
    # The model saw each holdout user's training history only (l1: 5 items, s1: 2, new users: none).
    assert sorted(rec.seen) == [("l1", 5), ("n1", 0), ("n2", 0), ("s1", 2)]
    third, second = 1 / math.log2(4), 1 / math.log2(3)  # NDCG gains at ranks 3 and 2 (one relevant item)
    expected = {
        "all": {"hr@3": 3 / 4, "ndcg@3": (third + 0 + 1 + second) / 4, "mrr@3": (1 / 3 + 0 + 1 + 1 / 2) / 4,
                "coverage@3": 5 / 6, "users": 4.0},
        "new_users": {"hr@3": 1 / 2, "ndcg@3": third / 2, "mrr@3": 1 / 6, "coverage@3": 3 / 6, "users": 2.0},
        "short_history": {"hr@3": 1.0, "ndcg@3": 1.0, "mrr@3": 1.0, "coverage@3": 3 / 6, "users": 1.0},
        "long_history": {"hr@3": 1.0, "ndcg@3": second, "mrr@3": 1 / 2, "coverage@3": 3 / 6, "users": 1.0},
        # f is the only holdout item nobody touched before the cutoff: n2 alone is in new_items.
        "new_items": {"hr@3": 0.0, "ndcg@3": 0.0, "mrr@3": 0.0, "coverage@3": 3 / 6, "users": 1.0},
    }
    assert out.keys() == expected.keys()
    for segment, metrics in expected.items():
        assert out[segment] == pytest.approx(metrics), segment
    assert third == pytest.approx(0.5)


def test_score_omits_empty_segments_and_counts_padding_as_nothing():
    events = _events()
    holdout = build_holdout(temporal_split(events[events["user_id"].isin(["n1", "n2"])], CUTOFF))
    # Only 2 real items in the catalogue: k=3 is cut to 2, and padding never counts as coverage.
    # n2 gets padding only (index 0); decoded, it would wrap around to "z" and count as coverage.
    rec = FakeRecommender(["c", "z"], {"n1": ["c"], "n2": []})
    out = score(rec, holdout, k=3)
    # Nothing happened before the cutoff, so both targets are new items too.
    assert set(out) == {"all", "new_users", "new_items"}
    assert out["all"] == pytest.approx({"hr@3": 0.5, "ndcg@3": 0.5, "mrr@3": 0.5, "coverage@3": 0.5, "users": 2.0})


# ------------------------------------------------------------------------------------- decide

CFG = EvaluationConfig(k=10, primary_metric="ndcg@10", min_relative_improvement=0.05, min_holdout_users=20)
END = datetime(2026, 1, 10, tzinfo=UTC)
#: Per-user values of a reference model: every comparison below scales them, so each interval is a
#: point (every resample has the same relative gain) and the rule's arithmetic is what is tested.
UNIT = np.linspace(0.5, 1.5, 100)


def _champion(data_end: datetime = END - timedelta(days=1)) -> ModelRecord:
    return ModelRecord(
        model_version="m-champ", parent_version=None, kind="sasrec", status="champion", dag_id="d", run_id="r",
        as_of=data_end.date(), data_start=data_end - timedelta(days=30), data_end=data_end, artifact_uri="/m",
        checksum="x", config={}, metrics={}, holdout_users=100, decision="first model",
    )


def _per_user(mean: float) -> Scores:
    values = UNIT * mean
    return Scores({"all": {"ndcg@10": float(values.mean()), "hr@10": 0.9}}, {"ndcg@10": values})


def _decide(ch: float, base: float, champ: float | None = None, *, champion=None, users: int = 100, end=END, force=False, cfg=CFG):
    challenger, baseline = _per_user(ch), _per_user(base)
    current = _per_user(champ) if champ is not None else None
    return decide(
        cfg=cfg, challenger="m-new", challenger_metrics=challenger["all"], baseline_metrics=baseline["all"],
        champion=champion if champion is not None else (_champion() if champ is not None else None),
        champion_metrics=current["all"] if current else None,
        challenger_data_end=end, holdout_users=users, force=force,
        vs_baseline=compare(challenger, baseline, reference_version="most_popular", reference_role="baseline", cfg=cfg),
        vs_champion=compare(challenger, current, reference_version="m-champ", reference_role="champion", cfg=cfg) if current else None,
    )


def test_first_model_is_promoted_when_it_beats_most_popular():
    # With no champion nothing can be published, so the first model needs to beat most-popular, not
    # to clear the significance bar a challenger needs against a champion; the interval is stated.
    promoted = _decide(0.30, 0.20)
    assert (promoted.outcome, promoted.champion) == ("promote", None)
    assert promoted.reason == "first model: ndcg@10 0.3000 vs most-popular 0.2000: +50.0% [+50.0%, +50.0%], 95%, n = 100"
    assert promoted.values == pytest.approx({"challenger": 0.30, "champion": None, "baseline": 0.20})
    assert promoted.judged_against["reference"] == "most_popular" and promoted.judged_against["low"] == pytest.approx(0.5, abs=1e-5)
    tie = _decide(0.20, 0.20)
    assert tie.outcome == "keep" and tie.reason.startswith("first model does not beat most-popular")
    assert _decide(0.10, 0.20).outcome == "keep"
    assert _decide(0.209, 0.20).outcome == "promote"  # +4.5%: below the 5% margin a challenger needs, enough to start


def test_promotion_over_a_champion_needs_the_relative_margin():
    # Champion 0.30 and a 5 % margin: the interval's lower bound must exceed +5% (0.315).
    below = _decide(0.31, 0.10, 0.30)
    assert below.outcome == "keep" and below.champion == "m-champ"
    assert below.reason == (
        "ndcg@10 0.3100 vs champion 0.3000: +3.3% [+3.3%, +3.3%], 95%, n = 100; "
        "its lower bound must clear evaluation.min_relative_improvement=+5.0%"
    )
    above = _decide(0.32, 0.10, 0.30)
    assert above.outcome == "promote" and above.reason.startswith("ndcg@10 0.3200 vs champion 0.3000: +6.7% [+6.7%, +6.7%]")
    assert above.judged_against["reference"] == "m-champ"
    # Beating the champion is not enough when most-popular is better still.
    beaten = _decide(0.40, 0.45, 0.30)
    assert beaten.outcome == "keep" and beaten.reason.endswith("does not beat most-popular 0.4500")
    # A worse challenger is kept out.
    assert _decide(0.25, 0.10, 0.30).outcome == "keep"


def test_never_promote_over_a_champion_trained_on_newer_data():
    newer = _champion(data_end=END + timedelta(days=3))
    backfill = _decide(0.90, 0.10, 0.30, champion=newer, end=END)
    assert backfill.outcome == "keep"
    assert backfill.reason.startswith("backfill: champion m-champ was trained on newer data (up to 2026-01-13 00:00)")
    # Same data end is not a backfill.
    same = _decide(0.90, 0.10, 0.30, champion=_champion(data_end=END), end=END)
    assert same.outcome == "promote"


def test_force_promotes_whatever_the_metrics():
    forced = _decide(0.01, 0.50, 0.30, users=3, force=True)
    assert (forced.outcome, forced.reason) == ("promote", "forced by the run's force_promote param")


def test_too_small_a_holdout_keeps_the_champion():
    small = _decide(0.90, 0.10, users=19)
    assert small.outcome == "keep"
    assert small.reason == "holdout too small to judge: 19 users < evaluation.min_holdout_users=20"
    assert _decide(0.90, 0.10, users=20).outcome == "promote"


# ----------------------------------------------------------------------------- store_evaluation


def test_store_evaluation_replaces_a_previous_attempt(pg_engine, pg_schema):
    ensure_output_schema(pg_engine, pg_schema)
    metrics = {
        "all": {"hr@10": 0.5, "ndcg@10": 0.25, "users": 4.0},
        "new_users": {"hr@10": 0.0, "ndcg@10": 0.0, "users": 1.0},
    }
    common = dict(run_id="run-1", as_of=date(2026, 1, 10))
    assert store_evaluation(pg_engine, pg_schema, model_version="m-new", role="challenger", metrics=metrics, **common) == 4
    store_evaluation(pg_engine, pg_schema, model_version="popularity", role="baseline", metrics={"all": {"hr@10": 0.1, "users": 4.0}}, **common)
    retry = {"all": {"hr@10": 0.75, "ndcg@10": 0.5, "users": 4.0}, "new_users": {"hr@10": 1.0, "ndcg@10": 1.0, "users": 1.0}}
    assert store_evaluation(pg_engine, pg_schema, model_version="m-new", role="challenger", metrics=retry, **common) == 4
    with pg_engine.connect() as conn:
        rows = conn.execute(sa.text(
            f'SELECT model_version, role, segment, metric, value, users, as_of FROM "{pg_schema}".evaluations '
            "ORDER BY model_version, segment, metric"
        )).all()
    assert [tuple(r) for r in rows] == [
        ("m-new", "challenger", "all", "hr@10", 0.75, 4, date(2026, 1, 10)),
        ("m-new", "challenger", "all", "ndcg@10", 0.5, 4, date(2026, 1, 10)),
        ("m-new", "challenger", "new_users", "hr@10", 1.0, 1, date(2026, 1, 10)),
        ("m-new", "challenger", "new_users", "ndcg@10", 1.0, 1, date(2026, 1, 10)),
        ("popularity", "baseline", "all", "hr@10", 0.1, 4, date(2026, 1, 10)),
    ]


def test_guard_segment_blocks_a_challenger_that_regresses_short_histories():
    cfg = EvaluationConfig(k=10, primary_metric="ndcg@10", min_relative_improvement=0.01, guard_segment="short_history", guard_tolerance=0.05)
    challenger, champion, baseline = _per_user(0.40), _per_user(0.30), _per_user(0.10)
    common = dict(
        cfg=cfg, challenger="m-new", challenger_metrics=challenger["all"], baseline_metrics=baseline["all"],
        champion=_champion(), champion_metrics=champion["all"], challenger_data_end=END, holdout_users=100,
        vs_baseline=compare(challenger, baseline, reference_version="most_popular", reference_role="baseline", cfg=cfg),
        vs_champion=compare(challenger, champion, reference_version="m-champ", reference_role="champion", cfg=cfg),
    )
    worse = decide(**common, challenger_segments={"short_history": {"ndcg@10": 0.20}}, champion_segments={"short_history": {"ndcg@10": 0.25}})
    assert worse.outcome == "keep" and worse.reason.startswith("guard:")
    within = decide(**common, challenger_segments={"short_history": {"ndcg@10": 0.24}}, champion_segments={"short_history": {"ndcg@10": 0.25}})
    assert within.outcome == "promote"  # a 4% drop is inside the 5% tolerance


def test_a_model_with_nan_scores_fails_evaluation_by_name():
    from recsys_tasks.modeling.metrics import NonFiniteMetric

    class NanScores(FakeRecommender):
        def recommend(self, histories, *, k, exclude=None, batch_users=4096):
            for offset, top, scores in super().recommend(histories, k=k, exclude=exclude, batch_users=batch_users):
                yield offset, top, np.where(top > 0, np.nan, -np.inf)

    holdout = build_holdout(temporal_split(_events(), CUTOFF))
    rec = NanScores(list("abcdef"), {u: ["a", "b", "c"] for u in holdout.user_ids})
    with pytest.raises(NonFiniteMetric, match=f"NaN or infinite scores for {len(holdout)} of {len(holdout)} holdout users"):
        score(rec, holdout, k=3)


def test_a_model_trained_into_the_holdout_cannot_be_scored():
    from recsys_tasks.modeling.evaluation import HoldoutLeak, check_outside_training

    check_outside_training(_champion(data_end=CUTOFF), CUTOFF, role="challenger")  # up to the cutoff: fine
    with pytest.raises(HoldoutLeak, match=r"the champion m-champ was trained on data up to 2026-01-10 06:00, after this run's holdout"):
        check_outside_training(_champion(data_end=CUTOFF + timedelta(hours=6)), CUTOFF, role="champion")
