from __future__ import annotations

from recsys_tasks.report import line_chart, render_report


def test_report_holds_decision_metrics_and_charts():
    html = render_report(
        run_id="scheduled__2026-02-01",
        as_of="2026-02-01",
        decision={"outcome": "keep", "reason": "ndcg@10 0.2 < 0.3 <script>", "challenger": "m2", "champion": "m1"},
        metrics={
            "challenger": {"all": {"ndcg@10": 0.2, "users": 40.0}},
            "champion": {"all": {"ndcg@10": 0.3, "users": 40.0}},
            "baseline": {"all": {"ndcg@10": 0.1, "users": 40.0}},
        },
        training_history=[{"epoch": 1, "loss": 4.0, "ndcg@10": 0.1}, {"epoch": 2, "loss": 3.0, "ndcg@10": 0.2}],
        metric_history=[{"as_of": "2026-01-31", "role": "champion", "value": 0.3}, {"as_of": "2026-02-01", "role": "champion", "value": 0.31}],
        primary_metric="ndcg@10",
    )
    assert "<strong>keep</strong>" in html and "&lt;script&gt;" in html and "<script>" not in html
    assert "0.3000" in html and "0.2000" in html and "0.1000" in html
    assert html.count("<svg") == 3 and "2026-01-31" in html


def test_empty_chart_says_so():
    assert "no data yet" in line_chart({}, title="t")


def test_report_shows_the_same_holdout_comparisons_with_their_intervals():
    comparison = {"reference": "m1", "reference_role": "champion", "metric": "ndcg@10", "relative": 0.031, "low": 0.004,
                  "high": 0.059, "confidence": 0.95, "n": 1204, "mean_a": 0.2581, "mean_b": 0.2503, "resamples": 2000, "seed": 0}
    html = render_report(
        run_id="r", as_of="2026-02-01", decision={"outcome": "promote", "reason": "x", "judged_against": comparison},
        metrics={}, training_history=[], metric_history=[], primary_metric="ndcg@10", comparisons=[comparison],
    )
    assert "champion (decided)" in html and "<td>+3.1%</td><td>[+0.4%, +5.9%]</td><td>95%</td><td>1,204</td>" in html
