"""Counted cleaning of a snapshot before validation: trim text values (never ids), drop exact duplicate rows."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from recsys_tasks.validation.contract import EVENT_DTYPES, EVENT_ID_COLUMNS, ITEM_DTYPES, ITEM_ID_COLUMNS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CleanSnapshot:
    """A snapshot's frames after cleaning, and what it changed (``events.<count>``, ``items.<count>``)."""

    events: pd.DataFrame
    items: pd.DataFrame
    counts: dict[str, int]

    @property
    def event_duplicates_dropped(self) -> int:
        """Exact duplicate event rows removed: the evidence of a double load that validation reports."""
        return self.counts["events.exact_duplicates_dropped"]


def clean_snapshot(events: pd.DataFrame, items: pd.DataFrame) -> CleanSnapshot:
    """Clean both frames of a snapshot; the counts are keyed by frame (``events.values_trimmed``)."""
    events, event_counts = clean_events(events)
    items, item_counts = clean_items(items)
    counts = {
        **{f"events.{k}": v for k, v in event_counts.items()},
        **{f"items.{k}": v for k, v in item_counts.items()},
    }
    return CleanSnapshot(events=events, items=items, counts=counts)


def clean_events(events: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """Trim whitespace in the text columns (ids stay byte-exact), then drop exact duplicate rows; return the counts."""
    return _clean(events, [c for c, kind in EVENT_DTYPES.items() if kind == "string" and c not in EVENT_ID_COLUMNS])


def clean_items(items: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """Trim whitespace in the catalogue's text columns (not its ids), then drop exact duplicate rows."""
    return _clean(items, [c for c, kind in ITEM_DTYPES.items() if kind == "string" and c not in ITEM_ID_COLUMNS])


def _clean(frame: pd.DataFrame, string_columns: Sequence[str]) -> tuple[pd.DataFrame, dict[str, int]]:
    # Trimming first makes " a" and "a" the same value, so such rows then count as duplicates.
    out = frame.copy()
    trimmed = sum(_trim(out, col) for col in string_columns if col in out.columns)
    before = len(out)
    try:
        out = out.drop_duplicates(keep="first", ignore_index=True)
    except TypeError:  # unhashable cell values (lists, dicts): compare their text instead
        keep = ~out.astype(str).duplicated(keep="first")
        out = out.loc[keep.to_numpy()].reset_index(drop=True)
    counts = {"exact_duplicates_dropped": before - len(out), "values_trimmed": trimmed}
    log.info("cleaned %d rows: %s", before, counts)
    return out, counts


def _trim(frame: pd.DataFrame, col: str) -> int:
    """Strip the str values of ``frame[col]`` in place; return how many changed."""
    series = frame[col]
    if isinstance(series.dtype, pd.StringDtype):  # vectorised path for the canonical dtype
        stripped = series.str.strip()
        n = int((series.notna() & (stripped != series)).sum())
        if n:
            frame[col] = stripped
        return n
    # Only str values are touched: a column of the wrong type is left for validation to report.
    if series.dtype != object:
        return 0
    is_text = series.map(lambda v: isinstance(v, str), na_action="ignore").fillna(False).astype(bool)
    if not is_text.any():
        return 0
    stripped = series[is_text].map(str.strip)
    changed = stripped != series[is_text]
    n = int(changed.sum())
    if n:
        frame.loc[stripped.index[changed.to_numpy()], col] = stripped[changed]
    return n
