"""Validate a snapshot whose events arrive in chunks of whole users, in memory bounded by the chunk.

Row-level checks (column presence and dtypes, the ``behaviour_events`` GX suite, padded ids) run on
each chunk and their counts are summed. The checks about the whole window (unique event ids, the
interval's volume, catalogue membership, event-type shares, duplicate rows) are judged once, from
counters every chunk updates. A whole frame is the one-chunk case (``validate_snapshot``), so both
report the same outcomes. Why each check is computed where it is: ``docs/validation.md``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from recsys_tasks.config import ValidationConfig
from recsys_tasks.timeutil import utc
from recsys_tasks.validation import suites
from recsys_tasks.validation.checks import duplicate_rows_outcome, schema_outcomes
from recsys_tasks.validation.contract import (
    EVENT_DTYPES,
    EVENT_ID_COLUMNS,
    EVENTS_SUITE,
    ITEM_DTYPES,
    ITEM_ID_COLUMNS,
    ITEMS_SUITE,
)
from recsys_tasks.validation.counters import (
    ItemsInCatalogue,
    PaddedIds,
    TypeShares,
    UniqueIds,
    padded_ids_outcomes,
)
from recsys_tasks.validation.outcomes import ExpectationOutcome, Severity, ValidationReport
from recsys_tasks.validation.tally import Tally

log = logging.getLogger(__name__)

#: Re-reads the window's event ids in row order (only when some repeat, to quote them).
EventIds = Callable[[], Iterable[pd.Series]]


class WindowChecks:
    """The events checks of one window, fed one cleaned chunk of whole users at a time, in row order."""

    def __init__(
        self,
        gx: Any,
        context: Any,
        catalogue: pd.Series | None,
        *,
        start: datetime,
        end: datetime,
        hist: datetime,
        config: ValidationConfig,
        severity: Severity,
        run_id: str,
    ) -> None:
        self._gx, self._context, self._catalogue = gx, context, catalogue
        self.start, self.end, self.hist, self.config, self.severity = start, end, hist, config, severity
        self.run_id = run_id
        self.chunks = 0
        self.rows = 0
        self.interval_events = 0
        self.schema: list[ExpectationOutcome] = []
        self.ok: set[str] = set()
        self._runner: suites.SuiteRunner | None = None
        self._tallies: dict[str, Tally] = {}
        self._unique: UniqueIds | None = None
        self._items: ItemsInCatalogue | None = None
        self._shares: TypeShares | None = None
        self._padded: list[PaddedIds] = []

    def _first(self, events: pd.DataFrame) -> None:
        """Schema outcomes and the checks they allow, from the first chunk (all have the file's schema)."""
        self.schema, self.ok = schema_outcomes(events, EVENT_DTYPES, "events", EVENTS_SUITE, self.severity)
        checks = suites.event_checks(self._gx, self.ok, self.end, self.hist, self.config)
        columns = suites.read_columns(checks, events.columns)
        self._runner = suites.SuiteRunner(self._gx, self._context, EVENTS_SUITE, columns, checks)
        if "event_id" in self.ok:
            self._unique = UniqueIds()
        if "item_id" in self.ok and self._catalogue is not None:
            self._items = ItemsInCatalogue(self._catalogue)
        if self.config.event_type_share_bounds and {"event_type", "event_ts"} <= self.ok:
            self._shares = TypeShares()
        self._padded = [PaddedIds(c) for c in EVENT_ID_COLUMNS if c in self.ok]

    def add(self, events: pd.DataFrame) -> None:
        """Check one chunk (all rows of each of its users, cleaned) and count what the window checks need."""
        if not self.chunks:
            self._first(events)
        assert self._runner is not None
        # One Data Docs page per chunk; the first carries the run's name as a whole frame's page does.
        name = self.run_id if not self.chunks else f"{self.run_id} (users chunk {self.chunks + 1})"
        for tally in self._runner.run(events, name):
            if tally.key in self._tallies:
                self._tallies[tally.key].add(tally)
            else:
                self._tallies[tally.key] = tally
        self.chunks += 1
        self.rows += len(events)
        if "event_ts" in self.ok:
            in_interval = (events["event_ts"] >= self.start) & (events["event_ts"] < self.end)
            self.interval_events += int(in_interval.sum())
            if self._shares is not None:
                self._shares.add(events.loc[in_interval, "event_type"])
        if self._unique is not None:
            self._unique.add(events["event_id"])
        if self._items is not None:
            self._items.add(events["item_id"])
        for padded in self._padded:
            padded.add(events[padded.column])

    def gx_outcomes(self, event_ids: EventIds, previous_volumes: Sequence[int]) -> list[ExpectationOutcome]:
        """The GX suite's outcomes, then the window's unique ids and its volume (a GX row count)."""
        tallies = list(self._tallies.values())
        if self._unique is not None:
            tallies.append(self._unique.tally(event_ids))
        out = [t.outcome(EVENTS_SUITE, self.severity) for t in tallies]
        if "event_ts" in self.ok:
            # One row per interval event and no column: a row count whose memory does not grow with it.
            check = suites.volume_check(self._gx, self.config, previous_volumes)
            runner = suites.SuiteRunner(self._gx, self._context, f"{EVENTS_SUITE}_interval", [], [check])
            interval = pd.DataFrame(index=pd.RangeIndex(self.interval_events))
            out += [t.outcome(EVENTS_SUITE, self.severity) for t in runner.run(interval, self.run_id)]
        return out

    def computed_outcomes(self, duplicates_dropped: int) -> list[ExpectationOutcome]:
        """Catalogue membership, type shares, duplicate rows, padded ids, in the report's order."""
        out = []
        if self._items is not None:
            out.append(self._items.outcome(self.config, self.severity))
        share = self._shares.outcome(self.config, self.severity) if self._shares is not None else None
        if share is not None:
            out.append(share)
        out.append(duplicate_rows_outcome(self.rows, duplicates_dropped, self.severity))
        out += [p.outcome("events", EVENTS_SUITE, self.severity) for p in self._padded]
        return out


class SnapshotValidation:
    """One run's validation: the catalogue checked whole, the events by :class:`WindowChecks`, one report."""

    def __init__(
        self,
        items: pd.DataFrame,
        *,
        interval_start: datetime,
        interval_end: datetime,
        history_start: datetime,
        config: ValidationConfig,
        docs_dir: Path | None,
        run_id: str,
    ) -> None:
        start, end, hist = (utc(interval_start), utc(interval_end), utc(history_start))
        if not hist <= start < end:
            raise ValueError(
                f"need history_start <= interval_start < interval_end, got {hist}, {start}, {end}; "
                "pass the run's data interval"
            )
        self.gx = suites.import_gx()
        self.context = suites.make_context(self.gx, docs_dir)
        self.docs_dir, self.run_id = docs_dir, run_id
        self.severity = Severity.from_config(config)
        self.items = items
        # A missing or mistyped column skips the checks that read it; its own outcome names it.
        self.item_schema, self.item_ok = schema_outcomes(
            items, ITEM_DTYPES, "items", ITEMS_SUITE, self.severity
        )
        catalogue = items["item_id"] if "item_id" in self.item_ok else None
        self.events = WindowChecks(
            self.gx, self.context, catalogue, start=start, end=end, hist=hist,
            config=config, severity=self.severity, run_id=run_id,
        )

    def report(
        self,
        *,
        event_ids: EventIds,
        previous_volumes: Sequence[int],
        duplicates_dropped: int,
        cleaning_counts: Mapping[str, int] | None,
    ) -> ValidationReport:
        """Judge the window once every chunk is in; write the Data Docs."""
        if not self.events.chunks:
            raise ValueError("no events frame was added, not even an empty one; add the snapshot's events")
        checks = suites.item_checks(self.gx, self.item_ok)
        item_gx = suites.run_suite(
            self.gx, self.context, ITEMS_SUITE, self.items, checks, self.run_id, self.severity
        )
        results = [
            *self.events.schema,
            *self.item_schema,
            *self.events.gx_outcomes(event_ids, previous_volumes),
            *item_gx,
            *self.events.computed_outcomes(duplicates_dropped),
            *padded_ids_outcomes(
                self.items, ITEM_ID_COLUMNS, self.item_ok, "items", ITEMS_SUITE, self.severity
            ),
        ]
        docs_path = suites.build_docs(self.context, self.docs_dir) if self.docs_dir is not None else None
        report = ValidationReport(
            run_id=self.run_id,
            results=results,
            cleaning_counts=dict(cleaning_counts or {}),
            docs_path=docs_path,
        )
        (log.warning if (report.blocking_failures or report.warnings) else log.info)("%s", report.summary())
        return report
