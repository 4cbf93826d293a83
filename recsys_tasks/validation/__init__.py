"""Clean and validate one interval snapshot with Great Expectations before anything trains on it.

Every check has a stable key (``events.<...>``, ``items.<...>``); a failed check blocks the run
unless its key or expectation name is listed in ``validation.warning_expectations``. The stage
streams the snapshot in chunks of whole users (``clean_and_validate``), so its memory is bounded by
``window.chunk_rows``. The checks, their keys and why each is computed where it is:
``docs/validation.md``.
"""

from recsys_tasks.validation.checks import interval_volume
from recsys_tasks.validation.cleaning import CleanSnapshot, clean_events, clean_items, clean_snapshot
from recsys_tasks.validation.contract import EVENT_DTYPES, EVENTS_SUITE, ITEM_DTYPES, ITEMS_SUITE
from recsys_tasks.validation.outcomes import (
    DataValidationError,
    ExpectationOutcome,
    ValidationReport,
    raise_for_blocking,
)
from recsys_tasks.validation.snapshot import CleanValidatedSnapshot, clean_and_validate, validate_snapshot
from recsys_tasks.validation.store import previous_volumes, store_report

__all__ = [
    "EVENTS_SUITE",
    "EVENT_DTYPES",
    "ITEMS_SUITE",
    "ITEM_DTYPES",
    "CleanSnapshot",
    "CleanValidatedSnapshot",
    "DataValidationError",
    "ExpectationOutcome",
    "ValidationReport",
    "clean_and_validate",
    "clean_events",
    "clean_items",
    "clean_snapshot",
    "interval_volume",
    "previous_volumes",
    "raise_for_blocking",
    "store_report",
    "validate_snapshot",
]
