"""Validation's tables: the interval volumes earlier runs recorded, and each run's outcomes and verdict."""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa

from recsys_tasks.sqlfiles import statement
from recsys_tasks.timeutil import iso, now_iso
from recsys_tasks.validation.outcomes import ValidationReport


def previous_volumes(engine: sa.Engine, schema: str, *, as_of: date, limit: int) -> list[int]:
    """Interval volumes of the latest ``limit`` successful validations before ``as_of``, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            statement("select_previous_volumes", schema=schema), {"as_of": iso(as_of), "limit": limit}
        ).all()
    return [int(r.interval_events) for r in reversed(rows)]


def store_report(
    engine: sa.Engine, schema: str, report: ValidationReport, *, as_of: date, interval_events: int
) -> None:
    """Replace the run's outcomes and record its verdict and interval volume, in one transaction."""
    stamp = now_iso()
    run = {"run_id": report.run_id, "as_of": iso(as_of), "created_at": stamp}
    with engine.begin() as conn:
        conn.execute(statement("delete_validation_results", schema=schema), {"run_id": report.run_id})
        if report.results:
            rows = [{**row, **run} for row in report.rows()]
            conn.execute(statement("insert_validation_result", schema=schema), rows)
        conn.execute(
            statement("upsert_validation_run", schema=schema),
            {
                **run,
                "interval_events": interval_events,
                "success": report.success,
                "docs_uri": str(report.docs_path) if report.docs_path else None,
            },
        )
