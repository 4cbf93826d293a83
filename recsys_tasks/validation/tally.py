"""One expectation's result summed over the chunks of a window, and the outcome it reports.

A column-map expectation (not null, in set, between, unique) is judged row by row, so its results
on disjoint chunks add up: counts are summed, the percentage is recomputed from the sums, and the
examples are the first ones in row order, as one run over the whole frame would quote them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from recsys_tasks.validation.outcomes import EXAMPLES, ExpectationOutcome, Severity, jsonable

VOLUME_KEY = "events.interval_volume_within_band"


@dataclass
class Tally:
    """What one expectation found so far; :meth:`add` folds in its result on another chunk."""

    key: str
    expectation: str
    column: str | None
    note: str = ""  # why the bounds are what they are, added to the outcome's details
    bounds: dict[str, Any] = field(default_factory=dict)  # min/max of a table-level expectation
    success: bool = True
    error: str | None = None  # the first chunk on which GX could not evaluate it
    table: bool = False  # judged on the whole table (a row count): its observed value is never summed
    observed: Any = None
    element_count: int = 0
    unexpected_count: int = 0
    missing_count: int | None = None  # None: nulls are what it looks for (not-null), not skipped
    examples: list[Any] = field(default_factory=list)

    @classmethod
    def from_gx(cls, r: Any) -> Tally:
        """The tally of one GX ``ExpectationValidationResult`` (its expectation's ``meta`` holds the key)."""
        cfg = r.expectation_config
        meta = cfg.meta or {}
        res = dict(r.result or {})
        key = meta.get("key", "")
        column = cfg.kwargs.get("column")
        if column is None and key == VOLUME_KEY:
            column = "event_ts"  # a row count, but of the events whose event_ts falls in the interval
        error = _exception_message(r.exception_info)
        missing = res.get("missing_count")
        return cls(
            key=key,
            expectation=cfg.type,
            column=column,
            note=meta.get("note", ""),
            bounds={k: cfg.kwargs[k] for k in ("min_value", "max_value") if cfg.kwargs.get(k) is not None},
            success=bool(r.success) and not error,
            error=error,
            table="observed_value" in res,
            observed=res.get("observed_value"),
            element_count=int(res.get("element_count") or 0),
            unexpected_count=int(res.get("unexpected_count") or 0),
            missing_count=None if missing is None else int(missing),
            examples=list(res.get("partial_unexpected_list") or [])[:EXAMPLES],
        )

    def add(self, other: Tally) -> None:
        """Fold in the same expectation's result on the next chunk (rows after this tally's)."""
        if other.key != self.key:
            raise ValueError(f"cannot add {other.key!r} to {self.key!r}")
        if self.table or other.table:
            raise ValueError(f"{self.key} is judged on a whole table; evaluate it once, not per chunk")
        self.success = self.success and other.success
        self.error = self.error or other.error
        self.element_count += other.element_count
        self.unexpected_count += other.unexpected_count
        if other.missing_count is not None:
            self.missing_count = (self.missing_count or 0) + other.missing_count
        self.examples = (self.examples + other.examples)[:EXAMPLES]

    @property
    def unexpected_percent(self) -> float:
        """GX's percentage: of the non-null rows, or of all rows for a check that looks for nulls."""
        checked = self.element_count - (self.missing_count or 0)
        return self.unexpected_count / checked * 100 if checked else 0.0

    def outcome(self, suite: str, severity: Severity) -> ExpectationOutcome:
        """The reported outcome, under this run's severities."""
        observed: Any
        if self.error:
            observed, details = None, f"could not be evaluated: {self.error}"
        elif self.table:
            observed = jsonable(self.observed)
            details = f"expected within {jsonable(self.bounds)}" if self.bounds else "see observed value"
        else:
            examples = jsonable(self.examples[:EXAMPLES])
            observed = {
                "unexpected_count": self.unexpected_count,
                "element_count": self.element_count,
                "unexpected_percent": round(self.unexpected_percent, 4),
                "examples": examples,
            }
            details = f"{self.unexpected_count} of {self.element_count} checked rows unexpected" + (
                f", e.g. {examples}" if self.unexpected_count else ""
            )
        return ExpectationOutcome.judged(
            severity,
            suite=suite,
            key=self.key,
            expectation=self.expectation,
            column=self.column,
            success=self.success and not self.error,
            observed=observed,
            details=f"{details} ({self.note})" if self.note else details,
        )


def _exception_message(info: Any) -> str | None:
    """GX reports either one exception dict or a dict of them keyed by metric id."""
    if not isinstance(info, Mapping):
        return None
    if info.get("raised_exception"):
        return str(info.get("exception_message") or "exception")
    for value in info.values():
        if isinstance(value, Mapping) and value.get("raised_exception"):
            return str(value.get("exception_message") or "exception")
    return None
