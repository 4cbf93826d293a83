"""What validation produces: one outcome per check, the run's report, and the error that stops a run."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys_tasks.config import ValidationConfig

#: How many offending values an outcome quotes.
EXAMPLES = 5
_MAX_TEXT = 200
_REMEDY = (
    "Fix the source data or re-run after the late load; to accept a failure, list its expectation "
    "or key in validation.warning_expectations."
)


@dataclass(frozen=True)
class Severity:
    """Which failed checks only warn: those whose key or expectation name the config lists."""

    warn: frozenset[str] = frozenset()

    @classmethod
    def from_config(cls, config: ValidationConfig) -> Severity:
        return cls(frozenset(config.warning_expectations))

    def of(self, expectation: str, key: str) -> str:
        """``"warning"`` when the check is listed, else ``"blocking"``."""
        return "warning" if expectation in self.warn or key in self.warn else "blocking"


@dataclass(frozen=True)
class ExpectationOutcome:
    """The result of one check: GX-evaluated or computed here, in the same shape."""

    suite: str
    expectation: str
    column: str | None
    severity: str  # "blocking" or "warning"
    success: bool
    observed_value: Any  # JSON-serialisable
    details: str
    key: str = ""

    @classmethod
    def judged(
        cls,
        severity: Severity,
        *,
        suite: str,
        key: str,
        expectation: str,
        column: str | None,
        success: bool,
        observed: Any,
        details: str,
    ) -> ExpectationOutcome:
        """The outcome of check ``key``, its severity set by the run's warning list."""
        return cls(
            suite=suite,
            expectation=expectation,
            column=column,
            severity=severity.of(expectation, key),
            success=bool(success),
            observed_value=observed,
            details=clean_text(details),
            key=key,
        )

    def describe(self) -> str:
        """``key (expectation on column: observed ...)`` for messages."""
        where = f" on {self.column}" if self.column else ""
        observed = truncate(json.dumps(self.observed_value, ensure_ascii=False), 300)
        return f"{self.key} ({self.expectation}{where}: observed {observed}; {self.details})"


class DataValidationError(Exception):
    """Blocking expectations failed; ``.report`` holds every outcome."""

    def __init__(self, report: ValidationReport) -> None:
        super().__init__(report.summary())
        self.report = report


@dataclass
class ValidationReport:
    """All outcomes of one run's validation, the cleaning counts and where the Data Docs are."""

    run_id: str
    results: list[ExpectationOutcome] = field(default_factory=list)
    cleaning_counts: Mapping[str, int] = field(default_factory=dict)
    #: The Data Docs index: a local path while building, its artifact-store URI once published.
    docs_path: Path | str | None = None

    @property
    def blocking_failures(self) -> list[ExpectationOutcome]:
        return [r for r in self.results if not r.success and r.severity == "blocking"]

    @property
    def warnings(self) -> list[ExpectationOutcome]:
        return [r for r in self.results if not r.success and r.severity == "warning"]

    @property
    def success(self) -> bool:
        """True when no blocking expectation failed (warnings allowed)."""
        return not self.blocking_failures

    def rows(self) -> list[dict[str, Any]]:
        """One dict per outcome, ready for a parameterised insert (``observed_value`` is JSON text)."""
        return [
            {
                "suite": r.suite,
                "expectation": r.expectation,
                "column_name": r.column,
                "severity": r.severity,
                "success": bool(r.success),
                "observed_value": json.dumps(r.observed_value, ensure_ascii=False),
                "details": f"{r.key}: {r.details}" if r.key else r.details,
            }
            for r in self.results
        ]

    def summary(self) -> str:
        """One readable paragraph: what failed, on which column, what was observed, what to do."""
        checked = len(self.results)
        docs = f" Data Docs: {self.docs_path}." if self.docs_path else ""
        cleaned = ""
        if any(self.cleaning_counts.values()):
            cleaned = " Cleaning: " + ", ".join(f"{k}={v}" for k, v in self.cleaning_counts.items()) + "."
        warned = ""
        if self.warnings:
            warned = f" {len(self.warnings)} warning(s), recorded but not blocking: " + "; ".join(
                w.describe() for w in self.warnings
            ) + "."
        if self.success:
            return (
                f"Data validation passed for run {self.run_id}: {checked} checks, no blocking failures."
                f"{warned}{cleaned}{docs}"
            )
        blocking = "; ".join(b.describe() for b in self.blocking_failures)
        return (
            f"Data validation failed for run {self.run_id}: {len(self.blocking_failures)} of {checked} "
            f"checks failed and block the run: {blocking}.{warned}{cleaned} {_REMEDY}{docs}"
        )


def raise_for_blocking(report: ValidationReport) -> ValidationReport:
    """Raise ``DataValidationError`` if any blocking expectation failed; else return the report."""
    if not report.success:
        raise DataValidationError(report)
    return report


def jsonable(value: Any) -> Any:
    """JSON-ready copy: timestamps as ISO text, NaN as null, numpy scalars as Python, text cleaned."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return truncate(clean_text(value), _MAX_TEXT)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) or math.isinf(value) else float(value)
    if isinstance(value, (pd.Timestamp, datetime, date)):
        return value.isoformat()
    if value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, np.ndarray, pd.Series)):
        return [jsonable(v) for v in value]
    return truncate(clean_text(str(value)), _MAX_TEXT)


def clean_text(text: str) -> str:
    """``text`` without NUL characters."""
    # PostgreSQL text cannot hold NUL, and a raw NUL is unreadable in a log line.
    return text.replace("\x00", "\ufffd")


def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, an ellipsis marking the cut."""
    if len(text) <= limit:
        return text
    return text[: limit - 1] + "…"
