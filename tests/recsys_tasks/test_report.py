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
