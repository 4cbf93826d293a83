"""The checks about a whole window, counted chunk by chunk: unique ids, catalogue, type shares, padded ids.

Each counter is fed every chunk of the window in row order (:meth:`add`) and judges once at the end,
so the verdict, the counts and the examples are those one pass over the whole frame would give.
Memory grows with the window only where a check needs it: per type or per padded id; the event ids'
8-byte hashes go to local disk in partitions (never the ids' text).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from recsys_tasks.config import ValidationConfig
from recsys_tasks.validation.checks import ITEMS_IN_CATALOGUE, TYPE_SHARE, UNIQUE_EVENT_IDS_KEY, UNPADDED_IDS
from recsys_tasks.validation.contract import EVENTS_SUITE
from recsys_tasks.validation.outcomes import EXAMPLES, ExpectationOutcome, Severity, jsonable
from recsys_tasks.validation.tally import Tally

UNIQUE_VALUES = "expect_column_values_to_be_unique"


def hashes(values: pd.Series) -> np.ndarray:
    """64-bit hashes of non-null text values: equal text, equal hash."""
    return pd.util.hash_array(values.to_numpy(dtype=object), categorize=False)


def extend_distinct(examples: list[Any], values: Iterable[Any], limit: int = EXAMPLES) -> None:
    """Append the ``values`` not yet in ``examples`` until it holds ``limit``."""
    # Chunks come in row order and each offers its first ``limit`` distinct values, so the result is
    # the first ``limit`` distinct values of the whole window.
    for value in values:
        if len(examples) >= limit:
            return
        if value not in examples:
            examples.append(value)


class UniqueIds:
    """``events.event_id_unique``: ids kept as 64-bit hashes, spilled to local disk in ``PARTS``
    partitions by their top bits; each partition is sorted on its own at the end, so memory is one
    partition's hashes (1/PARTS of 8 bytes per event), not the window's."""

    PARTS = 64

    def __init__(self) -> None:
        import tempfile

        self._dir = tempfile.TemporaryDirectory(prefix="recsys-unique-ids-")
        self.rows = 0
        self.missing = 0

    def _part(self, i: int) -> str:
        return f"{self._dir.name}/{i:03d}.u64"

    def add(self, ids: pd.Series) -> None:
        present = ids.notna()
        self.rows += len(ids)
        self.missing += int((~present).sum())
        h = hashes(ids[present])
        part = (h >> np.uint64(64 - 6)).astype(np.int64)  # top 6 bits: one of PARTS partitions
        order = np.argsort(part, kind="stable")
        bounds = np.searchsorted(part[order], np.arange(self.PARTS + 1))
        for i in np.flatnonzero(np.diff(bounds)):
            with open(self._part(int(i)), "ab") as out:
                h[order[bounds[i] : bounds[i + 1]]].tofile(out)

    def tally(self, ids_again: Callable[[], Iterable[pd.Series]]) -> Tally:
        """The check's result; ``ids_again`` re-reads the ids in row order, only when some repeat."""
        # An id that may repeat across users' chunks cannot be checked within a chunk.
        unexpected, repeated_parts = 0, []
        with self._dir:
            for i in range(self.PARTS):
                try:
                    h = np.fromfile(self._part(i), dtype=np.uint64)
                except FileNotFoundError:
                    continue
                h.sort()
                # An id is unexpected when it equals a neighbour in sorted order.
                same = h[1:] == h[:-1]
                rows = np.zeros(len(h), dtype=bool)
                rows[1:] |= same
                rows[:-1] |= same
                unexpected += int(rows.sum())
                repeated_parts.append(np.unique(h[rows]))
        repeated = np.concatenate(repeated_parts) if repeated_parts else np.zeros(0, dtype=np.uint64)
        return Tally(
            key=UNIQUE_EVENT_IDS_KEY,
            expectation=UNIQUE_VALUES,
            column="event_id",
            success=unexpected == 0,
            element_count=self.rows,
            unexpected_count=unexpected,
            missing_count=self.missing,
            examples=_first_repeated(ids_again, repeated) if unexpected else [],
        )


def _first_repeated(ids_again: Callable[[], Iterable[pd.Series]], repeated: np.ndarray) -> list[Any]:
    """The first ``EXAMPLES`` ids (in row order, repeats included) whose hash is in ``repeated``."""
    examples: list[Any] = []
    for ids in ids_again():
        present = ids.dropna()
        examples += list(present[np.isin(hashes(present), repeated)].head(EXAMPLES - len(examples)))
        if len(examples) >= EXAMPLES:
            break
    return examples


class ItemsInCatalogue:
    """``events.items_in_catalogue``: item events whose item the catalogue lacks."""

    def __init__(self, catalogue: pd.Series) -> None:
        self._known = catalogue.dropna()
        self.item_events = 0
        self.unknown = 0
        self.examples: list[Any] = []

    def add(self, item_ids: pd.Series) -> None:
        referenced = item_ids.dropna()
        unknown = referenced[~referenced.isin(self._known)]
        self.item_events += len(referenced)
        self.unknown += len(unknown)
        extend_distinct(self.examples, unknown.drop_duplicates().head(EXAMPLES))

    def outcome(self, config: ValidationConfig, severity: Severity) -> ExpectationOutcome:
        """Fails when over ``max_unknown_item_share`` of item events name items missing from the catalogue."""
        share = self.unknown / self.item_events if self.item_events else 0.0
        return ExpectationOutcome.judged(
            severity,
            suite=EVENTS_SUITE,
            key="events.items_in_catalogue",
            expectation=ITEMS_IN_CATALOGUE,
            column="item_id",
            success=share <= config.max_unknown_item_share,
            observed={
                "unknown_share": round(share, 6),
                "unknown_events": self.unknown,
                "item_events": self.item_events,
                "examples": jsonable(self.examples),
            },
            details=(
                f"{self.unknown} of {self.item_events} item events reference items missing from the "
                f"catalogue (share {share:.2%}, tolerance {config.max_unknown_item_share:.2%})"
            ),
        )


class TypeShares:
    """``events.event_type_share_within_bounds``: each event type's count in the interval."""

    def __init__(self) -> None:
        self.rows = 0
        self.counts: Counter[str] = Counter()

    def add(self, interval_types: pd.Series) -> None:
        """Count the event types of the chunk's events that fall in the interval."""
        self.rows += len(interval_types)
        self.counts.update({str(t): int(n) for t, n in interval_types.value_counts().items()})

    def outcome(self, config: ValidationConfig, severity: Severity) -> ExpectationOutcome | None:
        """Fails when an event type's share of the interval leaves its bounds; None for an empty interval."""
        if not self.rows:  # an empty interval already fails the volume check
            return None
        typed = sum(self.counts.values())  # shares are of the events with a type, as value_counts gives them
        observed = {
            t: round(self.counts.get(t, 0) / typed if typed else 0.0, 6)
            for t in config.event_type_share_bounds
        }
        outside = {
            t: {"share": observed[t], "bounds": [lo, hi]}
            for t, (lo, hi) in config.event_type_share_bounds.items()
            if not lo <= observed[t] <= hi
        }
        return ExpectationOutcome.judged(
            severity,
            suite=EVENTS_SUITE,
            key="events.event_type_share_within_bounds",
            expectation=TYPE_SHARE,
            column="event_type",
            success=not outside,
            observed=outside or observed,
            details=(
                f"interval shares outside bounds: {outside}"
                if outside
                else f"interval shares within bounds over {self.rows} events"
            ),
        )


class PaddedIds:
    """``<frame>.<col>_unpadded``: id values with leading or trailing whitespace."""

    def __init__(self, column: str) -> None:
        self.column = column
        self.count = 0
        self._hashes: list[np.ndarray] = []
        self.examples: list[str] = []

    def add(self, values: pd.Series) -> None:
        values = values.dropna().astype(str)
        padded = values[values != values.str.strip()]
        if padded.empty:
            return
        distinct = padded.drop_duplicates()
        self.count += len(padded)
        self._hashes.append(hashes(distinct))
        extend_distinct(self.examples, [repr(v) for v in distinct.head(EXAMPLES)])

    def outcome(self, prefix: str, suite: str, severity: Severity) -> ExpectationOutcome:
        """Fails when any id is padded, naming examples.

        Such ids are kept as they are (never merged into the unpadded id); listing this expectation in
        ``validation.warning_expectations`` accepts them.
        """
        col, n, examples = self.column, self.count, self.examples
        distinct = len(np.unique(np.concatenate(self._hashes))) if self._hashes else 0
        return ExpectationOutcome.judged(
            severity,
            suite=suite,
            key=f"{prefix}.{col}_unpadded",
            expectation=UNPADDED_IDS,
            column=col,
            success=n == 0,
            observed={"padded_values": n, "distinct_padded_ids": distinct, "examples": examples},
            details=(
                f"{n} {col} values have leading or trailing whitespace, e.g. {', '.join(examples)}; they "
                "are kept as distinct ids. Fix the load, or list this expectation in "
                "validation.warning_expectations."
                if n
                else f"no {col} with surrounding whitespace"
            ),
        )


def padded_ids_outcomes(
    frame: pd.DataFrame, id_columns: Sequence[str], ok: set[str], prefix: str, suite: str, severity: Severity
) -> list[ExpectationOutcome]:
    """One ``PaddedIds`` outcome per id column of a whole frame that is present with the right dtype."""
    out = []
    for col in (c for c in id_columns if c in ok):
        counter = PaddedIds(col)
        counter.add(frame[col])
        out.append(counter.outcome(prefix, suite, severity))
    return out
