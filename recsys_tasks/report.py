"""A small self-contained HTML report per run: challenger vs champion vs most-popular, the
training curve and the primary metric over the last runs. No JavaScript, no external assets:
charts are inline SVG, so the file can be attached to a ticket or opened from the artifact store.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from recsys_tasks.modeling.significance import signed_percent

_COLOURS = {"challenger": "#d9480f", "champion": "#1c7ed6", "baseline": "#868e96", "loss": "#2b8a3e", "val": "#d9480f"}


def line_chart(
    series: Mapping[str, Sequence[tuple[float, float]]],
    *,
    title: str,
    x_labels: tuple[str, str] | None = None,
    width: int = 560,
    height: int = 220,
) -> str:
    """An inline SVG line chart of named (x, y) series."""
    points = [p for s in series.values() for p in s]
    if not points:
        return f"<p><em>{html.escape(title)}: no data yet</em></p>"
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y0, y1 = min(0.0, min(ys)), max(ys) * 1.1 if max(ys) > 0 else 1.0
    pad = 40

    def sx(x: float) -> float:
        return pad + (x - x0) / (x1 - x0) * (width - 2 * pad)

    def sy(y: float) -> float:
        return height - pad - (y - y0) / (y1 - y0) * (height - 2 * pad)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" aria-label="{html.escape(title)}">',
        f'<text x="{pad}" y="16" font-size="13" font-weight="bold">{html.escape(title)}</text>',
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#999"/>',
        f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="#999"/>',
        f'<text x="4" y="{sy(y1 / 1.1 if y1 != 1.0 else y1) + 4:.1f}" font-size="10">{(y1 / 1.1 if y1 != 1.0 else y1):.3g}</text>',
        f'<text x="4" y="{height - pad + 4}" font-size="10">{y0:.3g}</text>',
    ]
    first, last = x_labels or (f"{x0:g}", f"{x1:g}")
    parts += [
        f'<text x="{pad}" y="{height - pad + 16}" font-size="10">{html.escape(first)}</text>',
        f'<text x="{width - pad}" y="{height - pad + 16}" font-size="10" text-anchor="end">{html.escape(last)}</text>',
    ]
    for i, (name, pts) in enumerate(series.items()):
        colour = _COLOURS.get(name, "#5f3dc4")
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
        if len(pts) > 1:
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{coords}"/>')
        parts += [f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{colour}"/>' for x, y in pts]
        parts.append(f'<text x="{width - pad - 110}" y="{pad + 14 * i}" font-size="11" fill="{colour}">{html.escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def render_report(
    *,
    run_id: str,
    as_of: str,
    decision: Mapping[str, Any],
    metrics: Mapping[str, Mapping[str, Mapping[str, float]]],
    training_history: Sequence[Mapping[str, Any]],
    metric_history: Sequence[Mapping[str, Any]],
    primary_metric: str,
    comparisons: Sequence[Mapping[str, Any]] = (),
) -> str:
    """The report's HTML. ``metrics[role][segment][metric]``; ``metric_history`` rows have as_of, role, value;
    ``comparisons`` are the challenger's same-holdout comparisons (``promotion.Comparison.to_dict()``)."""
    esc = html.escape
    rows = []
    metric_names: list[str] = []
    for role_metrics in metrics.values():
        for name in role_metrics.get("all", {}):
            if name not in metric_names and name != "users":
                metric_names.append(name)
    for role in ("challenger", "champion", "baseline"):
        for segment, values in metrics.get(role, {}).items():
            cells = "".join(f"<td>{values.get(m, float('nan')):.4f}</td>" for m in metric_names)
            rows.append(f"<tr><td>{esc(role)}</td><td>{esc(segment)}</td><td>{int(values.get('users', 0))}</td>{cells}</tr>")
    table = (
        "<table><tr><th>model</th><th>segment</th><th>users</th>"
        + "".join(f"<th>{esc(m)}</th>" for m in metric_names)
        + "</tr>"
        + "".join(rows)
        + "</table>"
    )
    curve = line_chart(
        {
            "loss": [(float(h["epoch"]), float(h["loss"])) for h in training_history if "loss" in h],
        },
        title="training loss per epoch",
    ) + line_chart(
        {"val": [(float(h["epoch"]), float(h.get("ndcg@10", 0.0))) for h in training_history if "ndcg@10" in h]},
        title="validation NDCG@10 per epoch",
    )
    dates = sorted({str(r["as_of"])[:10] for r in metric_history})
    index = {d: i for i, d in enumerate(dates)}
    history_series: dict[str, list[tuple[float, float]]] = {}
    for r in metric_history:
        history_series.setdefault(str(r["role"]), []).append((float(index[str(r["as_of"])[:10]]), float(r["value"])))
    history = line_chart(
        {k: sorted(v) for k, v in history_series.items()},
        title=f"{primary_metric} over the last runs",
        x_labels=(dates[0], dates[-1]) if dates else None,
    )
    outcome = esc(str(decision.get("outcome", "?")))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>recsys run {esc(run_id)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ddd;padding:4px 8px;text-align:right}}td:first-child,td:nth-child(2){{text-align:left}}
.decision{{font-size:1.2em;padding:.5em;border-left:4px solid #1c7ed6;background:#f1f3f5}}</style></head>
<body><h1>Run {esc(run_id)} — as of {esc(as_of)}</h1>
<p class="decision"><strong>{outcome}</strong>: {esc(str(decision.get("reason", "")))}<br>
challenger <code>{esc(str(decision.get("challenger")))}</code>, champion <code>{esc(str(decision.get("champion")))}</code></p>
<h2>Challenger vs the models it was judged against (same holdout users)</h2>{_comparison_table(comparisons, decision)}
<h2>Holdout metrics</h2>{table}
<h2>Training</h2>{curve}
<h2>History</h2>{history}
</body></html>
"""


def _comparison_table(comparisons: Sequence[Mapping[str, Any]], decision: Mapping[str, Any]) -> str:
    """One row per reference: means, relative change and its confidence interval; the deciding one marked."""
    if not comparisons:
        return "<p><em>no comparisons stored for this run</em></p>"
    judged = (decision.get("judged_against") or {}).get("reference_role")
    rows = []
    for c in comparisons:
        mark = " (decided)" if c["reference_role"] == judged else ""
        rows.append(
            f"<tr><td>{html.escape(str(c['reference_role']))}{mark}</td><td>{html.escape(str(c['reference']))}</td>"
            f"<td>{c['mean_a']:.4f}</td><td>{c['mean_b']:.4f}</td><td>{signed_percent(c['relative'])}</td>"
            f"<td>[{signed_percent(c['low'])}, {signed_percent(c['high'])}]</td><td>{c['confidence'] * 100:g}%</td><td>{int(c['n']):,}</td></tr>"
        )
    return (
        "<table><tr><th>against</th><th>version</th><th>challenger</th><th>reference</th><th>relative change</th>"
        "<th>interval</th><th>confidence</th><th>users</th></tr>" + "".join(rows) + "</table>"
    )
