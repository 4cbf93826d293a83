"""The promotion rule: promote a challenger only when the improvement is real, not noise.

Challenger and reference (the champion, or most-popular for the first model) are scored on the
same holdout users; the paired bootstrap of :mod:`recsys_tasks.modeling.significance` gives the
confidence interval of the relative improvement of ``evaluation.primary_metric``, and the
challenger is promoted only when the whole interval clears ``evaluation.min_relative_improvement``
(see README, "Promotion and backfills"). Each comparison is stored with the per-user values it was
computed from, so the interval in a decision can be recomputed later.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any

import numpy as np
import sqlalchemy as sa

from recsys_tasks.config import EvaluationConfig
from recsys_tasks.modeling.evaluation import Scores
from recsys_tasks.modeling.significance import Interval, paired_bootstrap
from recsys_tasks.registry import ModelRecord
from recsys_tasks.sqlfiles import statement
from recsys_tasks.timeutil import now_iso

#: Per-user values are rounded to this many decimals before the bootstrap, so the stored JSON
#: arrays are compact and recomputing from them gives exactly the stored interval.
VALUE_DECIMALS = 6


@dataclass(frozen=True)
class Comparison:
    """The challenger against one reference model on the same holdout users."""

    reference: str
    reference_role: str  # "champion" or "baseline"
    metric: str
    interval: Interval
    challenger_values: np.ndarray = field(repr=False)
    reference_values: np.ndarray = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no per-user values)."""
        return {"reference": self.reference, "reference_role": self.reference_role, "metric": self.metric, **self.interval.to_dict()}


def compare(
    challenger: Scores, reference: Scores, *, reference_version: str, reference_role: str, cfg: EvaluationConfig
) -> Comparison:
    """Paired bootstrap of the challenger's primary metric against ``reference`` on the same users."""
    metric = cfg.primary_metric
    a = np.round(challenger.per_user[metric], VALUE_DECIMALS)
    b = np.round(reference.per_user[metric], VALUE_DECIMALS)
    interval = paired_bootstrap(a, b, confidence=cfg.confidence, resamples=cfg.bootstrap_resamples, seed=cfg.bootstrap_seed)
    return Comparison(reference_version, reference_role, metric, interval, a, b)


@dataclass
class Decision:
    """Whether tonight's challenger becomes champion, and why (kept in the registry)."""

    outcome: str  # "promote" or "keep"
    reason: str
    challenger: str
    champion: str | None
    primary_metric: str
    values: dict[str, float | None] = field(default_factory=dict)
    #: the comparison the rule judged by (against the champion, or most-popular for a first model)
    judged_against: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide(
    *,
    cfg: EvaluationConfig,
    challenger: str,
    challenger_metrics: Mapping[str, float],
    baseline_metrics: Mapping[str, float],
    champion: ModelRecord | None,
    champion_metrics: Mapping[str, float] | None,
    challenger_data_end: datetime,
    holdout_users: int,
    vs_baseline: Comparison | None = None,
    vs_champion: Comparison | None = None,
    force: bool = False,
    challenger_segments: Mapping[str, Mapping[str, float]] | None = None,
    champion_segments: Mapping[str, Mapping[str, float]] | None = None,
) -> Decision:
    """Apply the promotion rule; each guard clause states its reason.

    With per-segment metrics given, the challenger must also not drop the primary metric on
    ``cfg.guard_segment`` by more than ``cfg.guard_tolerance`` (relative) against the champion.
    """
    metric, margin = cfg.primary_metric, cfg.min_relative_improvement
    ch = float(challenger_metrics.get(metric, 0.0))
    base = float(baseline_metrics.get(metric, 0.0))
    cur = float(champion_metrics.get(metric, 0.0)) if champion_metrics is not None else None
    values = {"challenger": ch, "champion": cur, "baseline": base}
    champ_id = champion.model_version if champion else None
    first = champion is None or cur is None
    judged = vs_baseline if first else vs_champion

    def result(outcome: str, reason: str) -> Decision:
        return Decision(outcome, reason, challenger, champ_id, metric, values, judged.to_dict() if judged else None)

    if force:
        return result("promote", "forced by the run's force_promote param")
    if champion is not None and champion.data_end > challenger_data_end:
        return result(
            "keep",
            f"backfill: champion {champ_id} was trained on newer data (up to {champion.data_end:%Y-%m-%d %H:%M}) "
            f"than this challenger (up to {challenger_data_end:%Y-%m-%d %H:%M})",
        )
    if holdout_users < cfg.min_holdout_users:
        return result("keep", f"holdout too small to judge: {holdout_users} users < evaluation.min_holdout_users={cfg.min_holdout_users}")
    if judged is None:
        raise ValueError(f"decide() needs the challenger's comparison against {'most-popular' if first else 'the champion'}")
    needs = f"its lower bound must clear evaluation.min_relative_improvement={margin:+.1%}"
    if first:
        # With no champion nothing can be published at all, so the first model needs only to beat
        # most-popular; the significance bar guards against replacing a champion on noise.
        if ch > base:
            return result("promote", f"first model: {metric} {ch:.4f} vs most-popular {base:.4f}: {judged.interval.text()}")
        return result("keep", f"first model does not beat most-popular: {metric} {ch:.4f} vs {base:.4f}: {judged.interval.text()}")
    guard = cfg.guard_segment
    if guard and challenger_segments and champion_segments and guard in challenger_segments and guard in champion_segments:
        g_ch = float(challenger_segments[guard].get(metric, 0.0))
        g_cur = float(champion_segments[guard].get(metric, 0.0))
        values[f"challenger.{guard}"], values[f"champion.{guard}"] = g_ch, g_cur
        if g_ch < g_cur * (1.0 - cfg.guard_tolerance):
            return result(
                "keep",
                f"guard: {metric} on segment {guard} drops from {g_cur:.4f} to {g_ch:.4f}, more than "
                f"evaluation.guard_tolerance={cfg.guard_tolerance:.0%}",
            )
    versus = f"{metric} {ch:.4f} vs champion {cur:.4f}: {judged.interval.text()}"
    if ch <= base:
        return result("keep", f"{versus}; does not beat most-popular {base:.4f}")
    if judged.interval.clears(margin):
        return result("promote", f"{versus}; most-popular {base:.4f}")
    return result("keep", f"{versus}; {needs}")


def store_comparisons(
    engine: sa.Engine, schema: str, *, run_id: str, as_of: date, challenger: str, comparisons: list[Comparison]
) -> int:
    """Write a run's comparisons of ``challenger`` (replacing a previous attempt's)."""
    rows = [
        {
            "run_id": run_id,
            "as_of": as_of.isoformat(),
            "challenger": challenger,
            "reference": c.reference,
            "reference_role": c.reference_role,
            "metric": c.metric,
            "users": c.interval.n,
            "confidence": c.interval.confidence,
            "relative_delta": c.interval.relative,
            "ci_low": c.interval.low,
            "ci_high": c.interval.high,
            "challenger_mean": c.interval.mean_a,
            "reference_mean": c.interval.mean_b,
            "resamples": c.interval.resamples,
            "seed": c.interval.seed,
            "challenger_values": _compact(c.challenger_values),
            "reference_values": _compact(c.reference_values),
            "created_at": now_iso(),
        }
        for c in comparisons
    ]
    with engine.begin() as conn:
        conn.execute(statement("delete_evaluation_comparisons", schema=schema), {"run_id": run_id, "challenger": challenger})
        if rows:
            conn.execute(statement("insert_evaluation_comparison", schema=schema), rows)
    return len(rows)


def load_comparisons(engine: sa.Engine, schema: str, *, run_id: str, challenger: str) -> list[Comparison]:
    """The comparisons stored for ``challenger`` by run ``run_id``, per-user values included."""
    with engine.connect() as conn:
        rows = conn.execute(statement("select_evaluation_comparisons", schema=schema), {"run_id": run_id, "challenger": challenger}).all()
    out = []
    for r in rows:
        interval = Interval(
            float(r.relative_delta), float(r.ci_low), float(r.ci_high), float(r.confidence), int(r.users),
            float(r.challenger_mean), float(r.reference_mean), int(r.resamples), int(r.seed),
        )
        a, b = (np.asarray(json.loads(v), dtype=np.float64) for v in (r.challenger_values, r.reference_values))
        out.append(Comparison(r.reference, r.reference_role, r.metric, interval, a, b))
    return out


def _compact(values: np.ndarray) -> str:
    """A JSON array of the (rounded, so short) values; reading it back gives the same floats."""
    return json.dumps(values.tolist(), separators=(",", ":"))
