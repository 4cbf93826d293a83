"""What a run is about: its data interval, as-of date, cutoff, artifact directory and warehouse.

The warehouse is two connections that are one by default: the source (``source_url``, read-only:
the behaviour events and the catalogue) and the output (``warehouse_url``: our output schema, read
and written). The output must be PostgreSQL or SQLite; the source may be any SQLAlchemy dialect.

Run layout (``<artifact_root>/<dag_id>/<as_of>/<run_id>/``)::

    snapshot/events.parquet, items.parquet   raw extract of [history_start, interval_end)
    clean/events.parquet, items.parquet      after counted, documented cleaning
    data_docs/                               Great Expectations Data Docs of this run
    train/                                   the challenger being trained (checkpoints)
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from upath import UPath

from recsys_tasks.config import RecsysConfig
from recsys_tasks.storage import ArtifactStore
from recsys_tasks.timeutil import as_date, day_start, now, utc, utc_or_none

#: The earliest as-of date a run may be about; anything older is a typo, not a backfill.
EARLIEST_AS_OF = date(1970, 1, 2)


class NothingToPublish(RuntimeError):
    """There is no champion yet, so no recommendations can be published."""


class StorageError(RuntimeError):
    """Reading or writing a run's files failed (disk full, permission, a vanished directory)."""


def names_storage_failures(stage: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a stage's ``run`` so an OS-level file failure names the stage, the path and the fix.

    Stages write their files atomically (temporary name, then rename) and change the database
    only after, so such a failure leaves nothing half-written and the champion untouched.
    """

    def decorate(run: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(run)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            try:
                return run(*args, **kwargs)
            except (ConnectionError, TimeoutError):
                raise  # network, not storage
            except OSError as exc:
                path = exc.filename or "(path not reported)"
                raise StorageError(
                    f"{stage}: {exc.strerror or exc} at {path}. Free space or fix the permissions of the artifact "
                    "store (artifact_root), then rerun the task; the champion and the published tables are unchanged."
                ) from exc

        return wrapped

    return decorate


class RunIntervalError(ValueError):
    """The run's interval cannot be processed (not a date, empty, before 1970 or not over yet)."""


@dataclass(frozen=True)
class RunContext:
    """What a run is about: its interval, its warehouse (source and output) and its configuration."""

    dag_id: str
    run_id: str
    interval_start: datetime
    interval_end: datetime
    #: The output connection (our schema, read and written). Holds credentials: kept out of repr
    #: (and so out of logs and tracebacks).
    warehouse_url: str = field(repr=False)
    config: RecsysConfig = field(default_factory=RecsysConfig)
    #: The source connection the events and the catalogue are read through (read-only); None: the
    #: output connection. Holds credentials: kept out of repr.
    source_url: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for name in ("interval_start", "interval_end"):
            value = getattr(self, name)
            object.__setattr__(self, name, utc(value))
        if not self.interval_start < self.interval_end:
            raise RunIntervalError(f"data interval [{self.interval_start}, {self.interval_end}) is empty")

    @property
    def as_of(self) -> date:
        """The day the run is about: the (UTC) date of the end of its data interval."""
        return as_date(self.interval_end)

    @property
    def history_start(self) -> datetime:
        return self.interval_start - timedelta(days=self.config.window.history_days)

    @property
    def cutoff(self) -> datetime:
        """Training sees only events before this instant; the holdout starts here."""
        span = self.interval_end - self.interval_start
        return self.interval_start + span * self.config.window.cutoff_fraction

    @property
    def schema(self) -> str:
        return self.config.warehouse.output_schema

    @cached_property
    def store(self) -> ArtifactStore:
        """The artifact store (a local directory or an fsspec URL) this run reads and writes."""
        return ArtifactStore.from_config(self.config)

    @property
    def artifact_root(self) -> UPath:
        """Absolute (or a URL), so paths handed between tasks never depend on a cwd or a host."""
        return self.store.root

    @property
    def run_parts(self) -> tuple[str, str, str]:
        """The run directory's path below the artifact root: ``(dag_id, as_of, run_id made path-safe)``."""
        return self.dag_id, self.as_of.isoformat(), re.sub(r"[^A-Za-z0-9_.-]+", "_", self.run_id)

    @property
    def run_dir(self) -> UPath:
        return self.artifact_root.joinpath(*self.run_parts)

    def work_dir(self, name: str) -> Path:
        """A local directory for output that must be written on this worker's disk (e.g. training checkpoints).

        With a local (shared) store it is the run directory's ``name``, so a retry on any worker finds
        it; with a remote store it is under the worker's local cache, and the result is put into the store.
        """
        if self.store.local:
            path = Path(self.run_dir, name)
            path.mkdir(parents=True, exist_ok=True)
            return path
        return self.store.scratch(*self.run_parts, name)

    @cached_property
    def engine(self) -> sa.Engine:
        """The output engine: everything written, and everything read from our output schema."""
        from recsys_tasks.data.warehouse import check_output_url

        check_output_url(self.warehouse_url)
        return self._engine(self.warehouse_url, output_schema=self.schema)

    @cached_property
    def source_engine(self) -> sa.Engine:
        """The engine the events and the catalogue are read through: :attr:`engine` itself when the
        source is the output connection."""
        if self.source_url is None or self.source_url == self.warehouse_url:
            return self.engine
        return self._engine(self.source_url, output_schema=None)

    def _engine(self, url: str, *, output_schema: str | None) -> sa.Engine:
        from recsys_tasks.data.warehouse import create_engine

        wh = self.config.warehouse
        return create_engine(
            url,
            output_schema=output_schema,
            connect_timeout_s=wh.connect_timeout_s,
            statement_timeout_s=wh.statement_timeout_s or None,
        )

    def dispose(self) -> None:
        for name in ("source_engine", "engine"):
            if name in self.__dict__:
                self.__dict__[name].dispose()


def make_context(
    *,
    dag_id: str,
    run_id: str,
    interval_start: datetime,
    interval_end: datetime,
    warehouse_url: str,
    source_url: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    config: RecsysConfig | None = None,
) -> RunContext:
    """A context with ``$RECSYS_CONFIG`` (or defaults) plus the run's overrides applied.

    ``warehouse_url`` is the output connection, ``source_url`` the source (None: the same). An output
    that is not PostgreSQL or SQLite is refused here, before the run touches anything.
    """
    from recsys_tasks.data.warehouse import check_output_url

    check_output_url(warehouse_url)
    cfg = config or RecsysConfig.from_env()
    if overrides:
        cfg = cfg.with_overrides({k: v for k, v in overrides.items() if v is not None})
    return RunContext(dag_id, run_id, interval_start, interval_end, warehouse_url, cfg, source_url)


def resolve_interval(
    start: datetime | None,
    end: datetime | None,
    *,
    as_of: str | None = None,
    fallback: datetime | None = None,
    length: timedelta = timedelta(days=1),
) -> tuple[datetime, datetime]:
    """The ``[start, end)`` a run processes.

    Precedence: an explicit ``as_of`` date (``YYYY-MM-DD``, from the trigger form) gives
    ``[as_of - length, as_of)``; else Airflow's data interval when it is not empty; else the interval
    of ``length`` ending at ``end`` (or ``fallback``: the logical date or the asset event's time) for
    runs whose timetable gives a point instead of an interval. Never "now".
    """
    if as_of:
        try:
            day = date.fromisoformat(str(as_of))
        except ValueError:
            raise RunIntervalError(f"as_of={as_of!r} is not a date; use YYYY-MM-DD") from None
        stop = day_start(_sane_as_of(day, what=f"as_of={day.isoformat()}"))
        return stop - length, stop
    if start is not None and end is not None and start < end:
        _sane_as_of(as_date(end), what=f"the data interval ending {end.isoformat()}")
        return start, end
    anchor = end or fallback
    if anchor is None:
        raise RunIntervalError("the run has no data interval, logical date or as_of param; pass as_of=YYYY-MM-DD")
    _sane_as_of(as_date(anchor), what=f"the interval ending {anchor.isoformat()}")
    return anchor - length, anchor


def _sane_as_of(day: date, *, what: str) -> date:
    """``day`` if a run can be about it: not before :data:`EARLIEST_AS_OF`, and its interval already over."""
    if day < EARLIEST_AS_OF:
        raise RunIntervalError(
            f"{what} is before {EARLIEST_AS_OF.isoformat()}, outside the range a run can process; check the date"
        )
    today = as_date(now())
    if day > today:
        raise RunIntervalError(
            f"{what} is in the future (today is {today.isoformat()} UTC): a run is about a day whose events "
            "have all happened. Use an as-of date up to today; today's as-of date covers yesterday."
        )
    return day


def run_interval(
    *,
    data_interval_start: datetime | None,
    data_interval_end: datetime | None,
    as_of: str | None = None,
    fallback: datetime | None = None,
    asset_events: list[Mapping[str, Any]] | None = None,
    length: timedelta = timedelta(days=1),
) -> tuple[datetime, datetime]:
    """The ``[start, end)`` of a run, whether scheduled, triggered from the UI or by asset events.

    For a run triggered by asset events (``[{"extra": {...}, "timestamp": ...}, ...]``) the events
    decide, not Airflow's data interval (which then only spans the events' arrival times): the
    union of the extras' ``interval_start``/``interval_end``; else the newest extra ``as_of``; else the
    day ending at the newest event. An explicit ``as_of`` param always wins. Otherwise this is
    :func:`resolve_interval`.
    """
    if asset_events and not as_of:
        extras = [dict(e.get("extra") or {}) for e in asset_events]
        starts = [s for s in (utc_or_none(x.get("interval_start")) for x in extras) if s is not None]
        ends = [e for e in (utc_or_none(x.get("interval_end")) for x in extras) if e is not None]
        if starts and ends:
            return resolve_interval(min(starts), max(ends), length=length)
        days = [str(x["as_of"]) for x in extras if x.get("as_of")]
        if days:
            return resolve_interval(None, None, as_of=max(days), length=length)
        stamps = [t for t in (utc_or_none(e.get("timestamp")) for e in asset_events) if t is not None]
        if stamps:
            return resolve_interval(None, None, fallback=max(stamps), length=length)
    return resolve_interval(data_interval_start, data_interval_end, as_of=as_of, fallback=fallback, length=length)


