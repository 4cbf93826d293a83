"""A run's snapshot (the interval's events and the catalogue, streamed from the warehouse into Parquet), and the
hourly refresh's reads of the active users' histories."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa
from upath import UPath

from recsys_tasks.config import WarehouseConfig
from recsys_tasks.data import pg_copy
from recsys_tasks.data.sequences import EVENT_COLUMNS, ITEM_COLUMNS
from recsys_tasks.data.source_tables import bind_timestamp, check_source_tables, source_connection
from recsys_tasks.data.warehouse import WarehouseError, describe, table_ref
from recsys_tasks.sqlfiles import SqlFileNotFound, load_sql
from recsys_tasks.storage import ArtifactStore, read_parquet

log = logging.getLogger(__name__)

EVENTS_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("user_id", pa.string()),
        ("item_id", pa.string()),
        ("event_type", pa.string()),
        ("event_ts", pa.timestamp("us", tz="UTC")),
        ("value", pa.float64()),
        ("query", pa.string()),
        ("session_id", pa.string()),
    ]
)
ITEMS_SCHEMA = pa.schema(
    [
        ("item_id", pa.string()),
        ("title", pa.string()),
        ("category", pa.string()),
        ("created_at", pa.timestamp("us", tz="UTC")),
    ]
)


@dataclass(frozen=True)
class Snapshot:
    """Where one run's extracted data lives and how much of it there is."""

    path: Path | UPath
    events: int
    items: int

    @property
    def events_path(self) -> Path | UPath:
        return self.path / "events.parquet"

    @property
    def items_path(self) -> Path | UPath:
        return self.path / "items.parquet"


def extract_interval(
    engine: sa.Engine,
    cfg: WarehouseConfig,
    *,
    start: datetime,
    end: datetime,
    out_dir: Path | UPath,
    store: ArtifactStore | None = None,
) -> Snapshot:
    """Stream the events of ``[start, end)`` and the catalogue into Parquet files under ``out_dir``.

    ``out_dir`` is local or in ``store`` (the artifact store). Rows arrive in chunks of
    ``cfg.chunk_rows`` (COPY on PostgreSQL, a server-side cursor elsewhere) and are written as they
    arrive, so memory is bounded by the chunk size. Each file appears whole or not at all; rerunning
    overwrites the same files. The events are grouped by user (see ``sql/select_events.sql``).
    """
    n_events = extract_events(engine, cfg, start=start, end=end, out_dir=out_dir, store=store)
    n_items = extract_catalogue(engine, cfg, end=end, out_dir=out_dir, store=store)
    return Snapshot(out_dir, n_events, n_items)


def extract_events(
    engine: sa.Engine,
    cfg: WarehouseConfig,
    *,
    start: datetime,
    end: datetime,
    out_dir: Path | UPath,
    store: ArtifactStore | None = None,
    shard: int = 0,
    shards: int = 1,
) -> int:
    """Stream the events of ``[start, end)`` of user shard ``shard`` of ``shards`` into the snapshot ``out_dir``.

    One shard (the default) writes ``events.parquet``; with ``shards > 1`` the warehouse selects the
    shard's users (``sql/select_events_shard.<dialect>.sql``) and the rows go to
    ``events.parquet/<shard_part(shard, shards)>``, one part of a Parquet dataset. Returns the row count.
    """
    if not 0 <= shard < shards:
        raise ValueError(f"need 0 <= shard < shards, got shard {shard} of {shards}")
    zone = check_source_tables(engine, cfg)["events"]
    store = store or ArtifactStore(str(out_dir))
    params: dict[str, Any] = {"start": bind_timestamp(engine, start, naive_zone=zone), "end": bind_timestamp(engine, end, naive_zone=zone)}
    target = Snapshot(out_dir, 0, 0).events_path
    if shards > 1:
        params.update(shard=shard, shards=shards)
        target = target / shard_part(shard, shards)
    return _stream_to_parquet(
        engine, _events_sql(engine, cfg, "select_events_shard" if shards > 1 else "select_events"), params, store,
        target, EVENTS_SCHEMA, cfg, label="events" if shards == 1 else f"events of shard {shard} of {shards}",
        table=table_ref(cfg.source_schema, cfg.events_table), naive_zone=zone,
    )


def extract_catalogue(
    engine: sa.Engine, cfg: WarehouseConfig, *, end: datetime, out_dir: Path | UPath, store: ArtifactStore | None = None
) -> int:
    """Stream the catalogue as known at ``end`` into ``out_dir/items.parquet``; returns the row count."""
    zone = check_source_tables(engine, cfg)["items"]
    return _stream_to_parquet(
        engine, _items_sql(engine, cfg), {"end": bind_timestamp(engine, end, naive_zone=zone)},
        store or ArtifactStore(str(out_dir)), Snapshot(out_dir, 0, 0).items_path, ITEMS_SCHEMA, cfg, label="items",
        table=table_ref(cfg.source_schema, cfg.items_table), naive_zone=zone,
    )


def shard_part(shard: int, shards: int) -> str:
    """The file name of one shard's part of a snapshot's ``events.parquet`` dataset."""
    return f"part-{shard:05d}-of-{shards:05d}.parquet"


def read_active_histories(
    engine: sa.Engine, cfg: WarehouseConfig, *, history_start: datetime, since: datetime, end: datetime
) -> pd.DataFrame:
    """Canonical events in ``[history_start, end)`` of the users with an item event in ``[since, end)``."""
    zone = check_source_tables(engine, cfg)["events"]
    bounds = {"history_start": history_start, "since": since, "end": end}
    with source_connection(engine) as conn:
        frame = pd.read_sql_query(
            sa.text(_events_sql(engine, cfg, "select_refresh_events")), conn,
            params={name: bind_timestamp(engine, value, naive_zone=zone) for name, value in bounds.items()},
        )
    return to_arrow(frame, EVENTS_SCHEMA, label="events", naive_zone=zone).to_pandas()


def read_catalogue(engine: sa.Engine, cfg: WarehouseConfig, *, end: datetime) -> pd.DataFrame:
    """The canonical item catalogue as known at ``end``."""
    zone = check_source_tables(engine, cfg)["items"]
    with source_connection(engine) as conn:
        frame = pd.read_sql_query(
            sa.text(_items_sql(engine, cfg)), conn, params={"end": bind_timestamp(engine, end, naive_zone=zone)}
        )
    return to_arrow(frame, ITEMS_SCHEMA, label="items", naive_zone=zone).to_pandas()


def _events_sql(engine: sa.Engine, cfg: WarehouseConfig, name: str) -> str:
    events = table_ref(cfg.source_schema, cfg.events_table)
    try:
        return load_sql(name, dialect=engine.dialect.name, events=events, **{c: cfg.event_column(c) for c in EVENT_COLUMNS})
    except SqlFileNotFound as exc:
        raise WarehouseError(
            f"extracting by user shard is not supported on {engine.dialect.name} yet (no sql/{name}.{engine.dialect.name}.sql): "
            "set warehouse.extract_shards to 1, or add that file (it must compute the user's shard as "
            "sql/select_events_shard.postgresql.sql does)."
        ) from exc


def _items_sql(engine: sa.Engine, cfg: WarehouseConfig) -> str:
    items = table_ref(cfg.source_schema, cfg.items_table)
    return load_sql("select_items", dialect=engine.dialect.name, items=items, **{c: cfg.item_column(c) for c in ITEM_COLUMNS})


def _stream_to_parquet(
    engine: sa.Engine,
    sql: str,
    params: Mapping[str, Any],
    store: ArtifactStore,
    path: Path | UPath,
    schema: pa.Schema,
    cfg: WarehouseConfig,
    *,
    label: str,
    table: str,
    naive_zone: str | None = None,
) -> int:
    total, started, last_log = 0, time.monotonic(), 0.0
    columns = schema.names
    try:
        # The file appears when it is complete; on any failure nothing (no partial file) is left.
        with store.writing(path) as tmp, source_connection(engine) as conn, pq.ParquetWriter(tmp, schema) as writer:
            # COPY on PostgreSQL (9x the rows/s, BENCHMARKS.md); None where only fetching rows is exact.
            copied = pg_copy.copy_query(
                conn, sql, params, schema, writer.write_table,
                chunk_rows=cfg.chunk_rows, label=label, naive_zone=naive_zone,
            )
            if copied is not None:
                total = copied
            else:
                result = conn.execution_options(stream_results=True, yield_per=cfg.chunk_rows).execute(
                    sa.text(sql), dict(params)
                )
                for rows in result.partitions(cfg.chunk_rows):
                    frame = pd.DataFrame.from_records(rows, columns=columns)
                    writer.write_table(to_arrow(frame, schema, label=label, naive_zone=naive_zone))
                    total += len(frame)
                    if time.monotonic() - last_log > 10:
                        last_log = time.monotonic()
                        log.info("extracting %s: %d rows so far (%.0f rows/s)", label, total, total / (last_log - started))
            if total == 0:
                writer.write_table(schema.empty_table())
    except sa.exc.DBAPIError as exc:
        raise WarehouseError(
            f"reading {label} from {describe(engine)} failed (table {table}): "
            f"{str(exc.orig).strip().rstrip('.')}. "
            "Check that the mapped columns have the contract's types and hold valid UTF-8 text (see README, "
            "'Warehouse contract')."
        ) from exc
    log.info("extracted %d %s in %.1fs into %s", total, label, time.monotonic() - started, path)
    return total


def to_arrow(frame: pd.DataFrame, schema: pa.Schema, *, label: str, naive_zone: str | None = None) -> pa.Table:
    """Normalise a raw result chunk to the canonical Arrow schema, naming any column that cannot convert.

    Timestamps without a zone are wall times in ``naive_zone`` when it is set (a naive source column
    under ``warehouse.naive_timestamps_are``), else UTC.
    """
    converted = {}
    for field in schema:
        col = frame[field.name]
        try:
            if pa.types.is_timestamp(field.type):
                converted[field.name] = _utc_column(col, naive_zone)
            elif pa.types.is_floating(field.type):
                converted[field.name] = pd.to_numeric(col).astype("float64")
            else:
                converted[field.name] = col.map(_as_text, na_action="ignore").astype("string")
        except (ValueError, TypeError) as exc:
            sample = col.dropna().head(3).tolist()
            raise WarehouseError(
                f"{label} column {field.name!r} cannot be read as {field.type} (sample values {sample!r}): {exc}. "
                "Fix the column type in the warehouse or expose a view that casts it."
            ) from exc
    return pa.Table.from_pandas(pd.DataFrame(converted), schema=schema, preserve_index=False)


def _utc_column(col: pd.Series, naive_zone: str | None) -> pd.Series:
    if naive_zone is None:
        return pd.to_datetime(col, utc=True, format="ISO8601").astype("datetime64[us, UTC]")
    stamps = pd.to_datetime(col, format="ISO8601")
    if stamps.dt.tz is None:
        # The repeated hour when clocks go back is read as its first (summer-time) occurrence; a
        # skipped wall time (clocks forward) moves to the next valid instant.
        stamps = stamps.dt.tz_localize(naive_zone, ambiguous=np.ones(len(stamps), dtype=bool), nonexistent="shift_forward")
    return stamps.dt.tz_convert("UTC").astype("datetime64[us, UTC]")


def _as_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def read_snapshot(path: Path | UPath) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The events and items frames of a snapshot directory (local or in the artifact store)."""
    return read_frame(path / "events.parquet"), read_frame(path / "items.parquet")


def read_frame(path: Path | UPath) -> pd.DataFrame:
    """One Parquet file of a snapshot (or of a shard of one) as a frame with string columns."""
    frame = read_parquet(path).to_pandas()
    for col in frame.columns:
        if frame[col].dtype == object:
            frame[col] = frame[col].astype("string")
    return frame
