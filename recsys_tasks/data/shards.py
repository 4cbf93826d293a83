"""User-hash shards of a snapshot, so that scoring and top-K run as parallel tasks with memory bounded by a shard.

A user's shard is the first 4 bytes of ``md5(UTF-8 user id)`` mod N: stable across processes, hosts and
Python versions (unlike ``hash()``), and computed the same way in the warehouse when extraction is
split by shard (``sql/select_events_shard.*.sql``). :func:`split_snapshot`
streams a snapshot's events once, record batch by record batch, into one Parquet file per shard in
the artifact store, and counts on the way what the business rules need over *all* users (each
item's interactions in the trending window, and whether it had any), so a shard ranks exactly as
the whole would.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from contextlib import ExitStack
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from upath import UPath

from recsys_tasks.data.snapshot import EVENTS_SCHEMA
from recsys_tasks.storage import ArtifactStore, parquet_batches
from recsys_tasks.timeutil import day_start

log = logging.getLogger(__name__)

#: Columns of the item-activity table a shard's rules read (one row per item with an interaction).
ACTIVITY_SCHEMA = pa.schema([("item_id", pa.string()), ("trending", pa.float64())])


def shard_of(user_ids: Iterable[str], shards: int) -> np.ndarray:
    """The shard (0..shards-1) of each user id."""
    if shards < 1:
        raise ValueError(f"shards must be >= 1, not {shards}")
    return np.fromiter((user_hash(str(u)) % shards for u in user_ids), dtype=np.int64)


def user_hash(user_id: str) -> int:
    """The first 4 bytes of md5(UTF-8 user id), big-endian: what ``sql/select_events_shard.*.sql`` computes."""
    return int.from_bytes(hashlib.md5(user_id.encode("utf-8"), usedforsecurity=False).digest()[:4], "big")


def shard_file(shard: int, shards: int) -> str:
    return f"events-{shard:05d}-of-{shards:05d}.parquet"


def split_snapshot(
    store: ArtifactStore, snapshot: UPath | Path, out_dir: UPath | Path, *, shards: int, as_of: date, trending_days: int
) -> list[str]:
    """Write ``snapshot``'s events as ``shards`` per-shard files and ``item_activity.parquet`` under ``out_dir``.

    Returns the shard files' URIs. Memory is bounded by one record batch plus per-item counters.
    """
    activity = _Activity(as_of, trending_days)
    targets = [out_dir / shard_file(i, shards) for i in range(shards)]
    with ExitStack() as stack:
        source = pq.ParquetFile(stack.enter_context((snapshot / "events.parquet").open("rb")))
        writers = [pq.ParquetWriter(stack.enter_context(store.writing(t)), EVENTS_SCHEMA) for t in targets]
        for writer in writers:
            stack.callback(writer.close)
        for batch in parquet_batches(source, batch_size=65_536):
            table = pa.Table.from_batches([batch]).cast(EVENTS_SCHEMA)
            activity.add(table)
            where = shard_of(table.column("user_id").to_pylist(), shards)
            for i, writer in enumerate(writers):
                part = table.filter(pa.array(where == i))
                if part.num_rows:
                    writer.write_table(part)
        for writer in writers:  # a shard without users still gets a readable (empty) file
            writer.write_table(EVENTS_SCHEMA.empty_table())
    with store.writing(out_dir / "item_activity.parquet") as tmp:
        pq.write_table(activity.table(), tmp)
    log.info("split %s into %d user shards (%d items with interactions)", snapshot, shards, len(activity.trending))
    return [store.uri(t) for t in targets]


def item_activity(events: UPath | Path, *, as_of: date, trending_days: int) -> pd.DataFrame:
    """The item-activity table (``ACTIVITY_SCHEMA``) of a snapshot's events file or dataset, in one
    streaming pass: what a publication's rules need over all users when it ranks them chunk by chunk."""
    from recsys_tasks.data.user_chunks import event_files

    activity = _Activity(as_of, trending_days)
    for file in event_files(events):
        with file.open("rb") as handle:
            for batch in parquet_batches(pq.ParquetFile(handle), batch_size=65_536, columns=["item_id", "event_ts"]):
                activity.add(pa.Table.from_batches([batch]))
    return activity.table().to_pandas()


class _Activity:
    """Each item's interactions in the trending window before ``as_of`` (0.0 marks "had any"), batch by batch."""

    def __init__(self, as_of: date, trending_days: int) -> None:
        self.stop = pd.Timestamp(day_start(as_of))
        self.start = self.stop - pd.Timedelta(days=trending_days)
        self.trending: dict[str, float] = {}

    def add(self, table: pa.Table) -> None:
        with_item = table.filter(pc.is_valid(table.column("item_id")))
        for item in pc.unique(with_item.column("item_id")).to_pylist():
            self.trending.setdefault(item, 0.0)
        ts = with_item.column("event_ts")
        in_window = pc.and_(
            pc.greater_equal(ts, pa.scalar(self.start.to_pydatetime(), ts.type)),
            pc.less(ts, pa.scalar(self.stop.to_pydatetime(), ts.type)),
        )
        for entry in pc.value_counts(with_item.filter(in_window).column("item_id")).to_pylist():
            self.trending[entry["values"]] = self.trending.get(entry["values"], 0.0) + float(entry["counts"])

    def table(self) -> pa.Table:
        return pa.table({"item_id": list(self.trending), "trending": list(self.trending.values())}, schema=ACTIVITY_SCHEMA)


__all__ = ["ACTIVITY_SCHEMA", "item_activity", "shard_file", "shard_of", "split_snapshot", "user_hash"]
