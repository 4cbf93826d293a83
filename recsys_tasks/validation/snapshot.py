"""Validate one interval snapshot: as one frame, or streamed from its files in chunks of whole users."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from upath import UPath

from recsys_tasks.config import ValidationConfig
from recsys_tasks.data.user_chunks import DEFAULT_CHUNK_ROWS
from recsys_tasks.validation.chunked import SnapshotValidation
from recsys_tasks.validation.cleaning import clean_events, clean_items
from recsys_tasks.validation.outcomes import ValidationReport

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq

log = logging.getLogger(__name__)


def validate_snapshot(
    events: pd.DataFrame,
    items: pd.DataFrame,
    *,
    interval_start: datetime,
    interval_end: datetime,
    history_start: datetime,
    config: ValidationConfig,
    previous_volumes: Sequence[int],
    docs_dir: Path | None,
    run_id: str,
    cleaning_counts: Mapping[str, int] | None = None,
    event_duplicates_dropped: int = 0,
) -> ValidationReport:
    """Run the ``behaviour_events`` and ``item_catalogue`` checks; write Data Docs to ``docs_dir``.

    ``previous_volumes`` are earlier runs' interval row counts, oldest first; the last
    ``config.volume_history_runs`` form the trailing mean. ``event_duplicates_dropped`` is the
    number of exact duplicate event rows cleaning removed from ``events`` (see ``clean_events``).
    """
    validation = SnapshotValidation(
        items, interval_start=interval_start, interval_end=interval_end, history_start=history_start,
        config=config, docs_dir=docs_dir, run_id=run_id,
    )
    validation.events.add(events)
    return validation.report(
        event_ids=lambda: [events["event_id"]],
        previous_volumes=previous_volumes,
        duplicates_dropped=event_duplicates_dropped,
        cleaning_counts=cleaning_counts,
    )


@dataclass(frozen=True)
class CleanValidatedSnapshot:
    """What :func:`clean_and_validate` found and wrote."""

    report: ValidationReport
    items: pd.DataFrame  # the cleaned catalogue (the events went to the file, chunk by chunk)
    events: int  # cleaned event rows
    interval_events: int  # of them in the interval: the volume later runs compare theirs against
    cleaning_counts: dict[str, int]
    #: Why the cleaned events could not be written (columns that do not convert to the canonical
    #: schema, which validation reports too), raised once the report is recorded; None when written.
    write_error: Exception | None = None


def clean_and_validate(
    snapshot: Path | UPath,
    clean_events_file: Path,
    *,
    interval_start: datetime,
    interval_end: datetime,
    history_start: datetime,
    config: ValidationConfig,
    previous_volumes: Sequence[int],
    docs_dir: Path | None,
    run_id: str,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> CleanValidatedSnapshot:
    """Clean and validate a snapshot directory one chunk of whole users at a time (``chunk_rows``: ``window.chunk_rows``).

    Each cleaned chunk is appended to the local Parquet file ``clean_events_file`` (canonical events
    schema) as it is checked, so memory is bounded by the chunk, not the window. Exact duplicate rows
    share a user, so cleaning a chunk drops the same rows as cleaning the whole frame.
    """
    import pyarrow.parquet as pq

    from recsys_tasks.data.snapshot import EVENTS_SCHEMA, read_frame

    items, item_counts = clean_items(read_frame(snapshot / "items.parquet"))
    validation = SnapshotValidation(
        items, interval_start=interval_start, interval_end=interval_end, history_start=history_start,
        config=config, docs_dir=docs_dir, run_id=run_id,
    )
    events_file = snapshot / "events.parquet"
    counts = {"exact_duplicates_dropped": 0, "values_trimmed": 0}
    with pq.ParquetWriter(clean_events_file, EVENTS_SCHEMA) as writer:
        sink = _Sink(writer, EVENTS_SCHEMA)
        for raw in _event_chunks(events_file, chunk_rows):
            clean, chunk_counts = clean_events(raw)
            del raw
            for key, n in chunk_counts.items():
                counts[key] += n
            sink.write(clean)
            validation.events.add(clean)
        sink.close()
    window = validation.events
    log.info("validated %d events in %d chunks of whole users", window.rows, window.chunks)
    cleaning = {
        **{f"events.{k}": v for k, v in counts.items()},
        **{f"items.{k}": v for k, v in item_counts.items()},
    }
    written = clean_events_file if sink.error is None else None
    report = validation.report(
        event_ids=lambda: _event_ids(written, events_file, chunk_rows),
        previous_volumes=previous_volumes,
        duplicates_dropped=counts["exact_duplicates_dropped"],
        cleaning_counts=cleaning,
    )
    return CleanValidatedSnapshot(
        report=report, items=items, events=window.rows, interval_events=window.interval_events,
        cleaning_counts=cleaning, write_error=sink.error,
    )


def _event_chunks(path: Path | UPath, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The file's events in chunks of whole users; one empty frame for a file without rows."""
    from recsys_tasks.data.snapshot import read_frame
    from recsys_tasks.data.user_chunks import user_chunks

    empty = True
    for chunk in user_chunks(path, chunk_rows=chunk_rows):
        empty = False
        yield chunk
    if empty:  # the checks still run (and an empty interval fails the volume check)
        yield read_frame(path)


def _event_ids(clean: Path | None, raw: Path | UPath, batch_rows: int) -> Iterator[pd.Series]:
    """The window's event ids in row order, batch by batch: from the cleaned file, else the extracted one."""
    import pyarrow.parquet as pq

    from recsys_tasks.data.user_chunks import event_files
    from recsys_tasks.storage import parquet_batches

    # From the cleaned file; when it could not be written, the ids as extracted (duplicates and all).
    for file in [clean] if clean is not None else event_files(raw):
        with file.open("rb") as handle:
            for batch in parquet_batches(pq.ParquetFile(handle), batch_size=batch_rows, columns=["event_id"]):
                yield batch.column(0).to_pandas()


class _Sink:
    """Appends cleaned chunks to one Parquet writer; stops at the first chunk that does not convert."""

    def __init__(self, writer: pq.ParquetWriter, schema: pa.Schema) -> None:
        self._writer, self._schema = writer, schema
        self.error: Exception | None = None
        self.rows = 0

    def write(self, frame: pd.DataFrame) -> None:
        import pyarrow as pa

        if self.error is not None:
            return
        try:
            table = pa.Table.from_pandas(frame, schema=self._schema, preserve_index=False)
        except (pa.ArrowException, KeyError, ValueError, TypeError) as exc:
            self.error = exc  # validation names the column; the stage raises this if it does not block
            return
        self._writer.write_table(table)
        self.rows += len(frame)

    def close(self) -> None:
        if not self.rows and self.error is None:
            self._writer.write_table(self._schema.empty_table())
