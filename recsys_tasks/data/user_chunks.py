"""A snapshot's events read in chunks of whole users, so validation and sequence building need memory
bounded by the chunk, not by the window.

Extraction asks the warehouse for the window ordered by user (``sql/select_events.sql``), so every
user's events are one contiguous run of the file and a chunk boundary can always fall between two
users. :func:`user_chunks` first checks that (one pass over the ``user_id`` column); a file whose
users are interleaved (a warehouse that ignored the order, a snapshot written by hand) is read whole
instead, with a warning: the same result, at the old memory cost.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from upath import UPath

from recsys_tasks.storage import parquet_batches, read_parquet

log = logging.getLogger(__name__)

#: Rows per chunk unless the caller says otherwise: ~0.1-0.2 GiB of frame for the canonical columns.
DEFAULT_CHUNK_ROWS = 250_000


def user_chunks(
    path: Path | UPath, *, columns: Sequence[str] | None = None, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> Iterator[pd.DataFrame]:
    """Frames of about ``chunk_rows`` rows (``columns`` only) holding every event of each user in them.

    Within a chunk rows keep the file's order. A user with more than ``chunk_rows`` events makes
    that chunk larger; nothing is split or dropped. Text columns come back with pandas' string dtype.
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, not {chunk_rows}")
    if grouped_by_user(path):
        yield from _stream(path, columns, chunk_rows)
        return
    log.warning(
        "%s is not grouped by user (its warehouse did not return the events ordered by user_id), so it is "
        "read whole: memory grows with the window. Re-extract, or check that the source honours ORDER BY.",
        path,
    )
    table = read_parquet(path)  # a file, or every part of a dataset directory
    frame = _frame(table.select(list(columns)) if columns else table)
    if len(frame):
        yield frame


def event_files(path: Path | UPath) -> list[Path | UPath]:
    """The Parquet files of a snapshot's events: ``path`` itself, or the parts of the dataset directory
    ``path`` (one per user shard when extraction ran per shard), in name order."""
    if path.is_dir():
        return sorted((p for p in path.iterdir() if p.name.endswith(".parquet")), key=lambda p: p.name)
    return [path]


def grouped_by_user(path: Path | UPath, *, batch_rows: int = 1_000_000) -> bool:
    """Whether every user's rows in the Parquet file (or dataset directory) at ``path`` are one contiguous run."""
    seen = np.zeros(0, dtype=np.uint64)  # hashes of the users whose run has started (O(users) memory)
    last: str | None = None
    for file in event_files(path):
        with file.open("rb") as handle:
            parquet = pq.ParquetFile(handle)
            if "user_id" not in parquet.schema_arrow.names:
                return False  # nothing to group by: read whole, and validation names the missing column
            for batch in parquet_batches(parquet, batch_size=batch_rows, columns=["user_id"]):
                values = batch.column(0).to_pandas().astype("string").to_numpy(dtype=object, na_value="")
                if not len(values):
                    continue
                starts = np.flatnonzero(np.concatenate(([True], values[1:] != values[:-1])))
                if values[0] == last:  # the previous batch's last user goes on here
                    starts = starts[1:]
                heads = pd.util.hash_array(values[starts].astype(object), categorize=False)
                if len(np.unique(heads)) < len(heads) or np.isin(heads, seen).any():
                    return False
                seen = np.concatenate((seen, heads))
                last = values[-1]
    return True


def _batches(path: Path | UPath, rows: int, columns: list[str] | None) -> Iterator[pa.RecordBatch]:
    for file in event_files(path):
        with file.open("rb") as handle:
            yield from parquet_batches(pq.ParquetFile(handle), batch_size=rows, columns=columns)


def _stream(path: Path | UPath, columns: Sequence[str] | None, chunk_rows: int) -> Iterator[pd.DataFrame]:
    read = list(columns) if columns else None
    if read is not None and "user_id" not in read:
        read.append("user_id")  # needed to cut at user boundaries; dropped again below
    carry: pd.DataFrame | None = None
    for batch in _batches(path, chunk_rows, read):
        frame = _frame(pa.Table.from_batches([batch]))
        if carry is not None and len(carry):
            frame = pd.concat([carry, frame], ignore_index=True)
        if not len(frame):
            continue
        users = frame["user_id"].to_numpy(dtype=object, na_value="")
        cut = _last_run_start(users)
        if cut == 0:  # one user so far: keep reading until the next one starts
            carry = frame
            continue
        carry = frame.iloc[cut:].reset_index(drop=True)
        yield _select(frame.iloc[:cut].reset_index(drop=True), columns)
    if carry is not None and len(carry):
        yield _select(carry, columns)


def _last_run_start(users: np.ndarray) -> int:
    """Position where the last user's run begins."""
    changes = np.flatnonzero(users[1:] != users[:-1])
    return int(changes[-1]) + 1 if len(changes) else 0


def _select(frame: pd.DataFrame, columns: Sequence[str] | None) -> pd.DataFrame:
    return frame if columns is None else frame[list(columns)]


def _frame(table: pa.Table) -> pd.DataFrame:
    frame = table.to_pandas()
    for col in frame.columns:
        if frame[col].dtype == object:
            frame[col] = frame[col].astype("string")
    return frame


__all__ = ["DEFAULT_CHUNK_ROWS", "event_files", "grouped_by_user", "user_chunks"]
