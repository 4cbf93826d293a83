"""Retention: delete what runs leave behind once the ``retention`` config says it has expired.

Three things grow with every run: the published partitions (one per as-of date, with their
``publications`` row), the run directories (``<artifact_root>/<dag_id>/<as_of>/<run_id>/``: snapshots,
Data Docs, checkpoints) and the model directories (``<artifact_root>/models/<version>/``). Whatever
the config says, cleanup never deletes

- the newest publication and the newest similar-items set (``latest_*`` would go empty),
- the champion's model, its parent's, or any model a kept publication names (rollback needs it),
- the run directory a kept publication was built from (rollback republishes from its snapshot),
- a registry row (history): a deleted model directory is marked with ``artifact_deleted_at``,
- a directory written to within the last hour (a run or a model copy may still be using it).

Each step fails alone: its error is logged and reported, and the other steps still run.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from upath import UPath

from recsys_tasks.config import RecsysConfig
from recsys_tasks.sqlfiles import load_sql, split_statements, statement
from recsys_tasks.storage import ArtifactStore
from recsys_tasks.timeutil import as_date, day_start, iso, now_iso
from recsys_tasks.timeutil import now as utc_now

log = logging.getLogger(__name__)

#: A directory touched more recently than this may belong to a run or a model copy still in progress.
GRACE = timedelta(hours=1)
#: How long a partition drop may wait for readers before it gives up until the next cleanup.
LOCK_TIMEOUT = "5s"
_BOUND_DAY = re.compile(r"'(\d{4}-\d{2}-\d{2})'")
_PUBLISHED_TABLES = ("recommendations", "similar_items")


@dataclass
class CleanupReport:
    """What one cleanup deleted (or, in a dry run, would delete)."""

    as_of: str
    dry_run: bool
    publications: list[str] = field(default_factory=list)
    similar_items: list[str] = field(default_factory=list)
    run_dirs: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Counts and errors, small enough for XCom (the log names every item)."""
        counts = {k: len(getattr(self, k)) for k in ("publications", "similar_items", "run_dirs", "models", "orphans")}
        return {"as_of": self.as_of, "dry_run": self.dry_run, **counts, "errors": list(self.errors)}


def cleanup(
    engine: sa.Engine,
    cfg: RecsysConfig,
    *,
    as_of: date,
    dag_id: str,
    dry_run: bool | None = None,
    now: datetime | None = None,
) -> CleanupReport:
    """Delete the partitions, run directories and model directories that expired as of ``as_of``."""
    r = cfg.retention
    report = CleanupReport(as_of=as_of.isoformat(), dry_run=r.dry_run if dry_run is None else dry_run)
    if not (r.partitions_days or r.snapshot_days or r.model_versions):
        log.info("retention is off (retention.* all null or 0): nothing is deleted")
        return report
    schema = cfg.warehouse.output_schema
    store = ArtifactStore.from_config(cfg)
    fresh = (now or utc_now()) - GRACE
    expiring: list[date] = []
    if r.partitions_days:
        before = as_of - timedelta(days=r.partitions_days)
        expiring = _step(report, "publications", _expire_published, engine, schema, before=before) or []
    kept = _step(report, "reading the kept publications", _kept_publications, engine, schema, expiring)
    if kept is None:  # without them nothing else can be protected: keep everything else this time
        return _logged(report)
    if r.snapshot_days:
        protected = {str(_run_dir(cfg, dag_id, as_date(p.as_of), str(p.run_id))) for p in kept}
        before = as_of - timedelta(days=r.snapshot_days)
        _step(
            report, "run directories", _expire_run_dirs, store, store.root / dag_id,
            before=before, protected=protected, fresh=fresh,
        )
    if r.model_versions:
        named = {str(p.model_version) for p in kept}
        _step(
            report, "model directories", _expire_models, engine, schema, store,
            keep=r.model_versions, named=named, fresh=fresh,
        )
    return _logged(report)


def _step(report: CleanupReport, what: str, action: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``action(*args, report=report, **kwargs)``; its failure is logged and reported, never raised
    (cleanup must not fail a run)."""
    try:
        return action(*args, report=report, **kwargs)
    except Exception as exc:  # any failure of one step must leave the others running
        log.exception("retention: %s failed; it is retried by the next cleanup", what)
        report.errors.append(f"{what}: {type(exc).__name__}: {exc}")
        return None


def _logged(report: CleanupReport) -> CleanupReport:
    verb = "would delete" if report.dry_run else "deleted"
    log.info(
        "retention as of %s %s: %d publications, %d similar-items sets, %d run directories, %d model directories, "
        "%d orphan model folders; %d step(s) failed",
        report.as_of, verb, len(report.publications), len(report.similar_items), len(report.run_dirs),
        len(report.models), len(report.orphans), len(report.errors),
    )
    return report


def _kept_publications(engine: sa.Engine, schema: str, expiring: list[date], *, report: CleanupReport) -> list[sa.Row]:
    """The publications that stay: those left in the table (in a dry run, less those that would go)."""
    with engine.connect() as conn:
        rows = conn.execute(statement("select_publications", schema=schema)).all()
    gone = set(expiring) if report.dry_run else set()
    return [p for p in rows if as_date(p.as_of) not in gone]


# --- published partitions -----------------------------------------------------------------------


def _expire_published(engine: sa.Engine, schema: str, *, before: date, report: CleanupReport) -> list[date]:
    """Drop the publications and published sets older than ``before``, the newest of each excepted.

    Returns the as-of dates whose publication went (or would go, in a dry run).
    """
    with engine.connect() as conn:
        publications = {as_date(p.as_of) for p in conn.execute(statement("select_publications", schema=schema))}
        days = {table: _published_days(conn, schema, table) for table in _PUBLISHED_TABLES}
    # latest_recommendations shows the newest publication, latest_similar_items the newest set.
    newest = {
        "recommendations": max(publications, default=max(days["recommendations"], default=None)),
        "similar_items": max(days["similar_items"], default=None),
    }
    expired: dict[str, list[date]] = {}
    for table, listing in (("recommendations", report.publications), ("similar_items", report.similar_items)):
        present = set(days[table]) | (publications if table == "recommendations" else set())
        expired[table] = sorted(d for d in present if d < before and d != newest[table])
        for day in expired[table]:
            log.info("retention: %s %s.%s of %s", _verb(report), schema, table, day)
            if not report.dry_run:
                _drop_day(engine, schema, table, day, partition=days[table].get(day))
            listing.append(day.isoformat())
    return [d for d in expired["recommendations"] if d in publications]


def _published_days(conn: sa.Connection, schema: str, table: str) -> dict[date, str | None]:
    """The as-of dates with rows in ``table``, mapped to their partition (PostgreSQL) or None."""
    if conn.dialect.name != "postgresql":
        return {as_date(d): None for (d,) in conn.execute(statement("select_published_days", schema=schema, table=table))}
    days = {}
    listing = conn.execute(statement("select_partitions", dialect="postgresql"), {"parent": f'"{schema}"."{table}"'})
    for partition, bound in listing:
        match = _BOUND_DAY.search(bound or "")
        if match:
            days[date.fromisoformat(match.group(1))] = partition
    return days


def _drop_day(engine: sa.Engine, schema: str, table: str, day: date, *, partition: str | None) -> None:
    """Delete one as-of date of ``table`` (and its publication row) in one transaction."""
    with engine.begin() as conn:
        if table == "recommendations":
            conn.execute(statement("delete_publication", schema=schema), {"as_of": iso(day)})
        if conn.dialect.name != "postgresql":
            conn.execute(statement("delete_published_day", schema=schema, table=table), {"as_of": iso(day)})
        elif partition is not None:
            conn.execute(statement("set_lock_timeout", dialect="postgresql"), {"timeout": LOCK_TIMEOUT})
            script = load_sql(f"detach_{table}_partition", dialect="postgresql", schema=schema, partition=partition)
            for stmt in split_statements(script):
                conn.exec_driver_sql(stmt)


# --- run directories ----------------------------------------------------------------------------


def _run_dir(cfg: RecsysConfig, dag_id: str, as_of: date, run_id: str) -> UPath:
    """Where the run ``run_id`` of ``as_of`` keeps its files (the path rollback reads the snapshot from)."""
    from recsys_tasks.stages.context import RunContext

    end = day_start(as_of)
    return RunContext(dag_id, run_id, end - timedelta(days=1), end, "", cfg).run_dir


def _expire_run_dirs(
    store: ArtifactStore, base: UPath, *, before: date, protected: set[str], fresh: datetime, report: CleanupReport
) -> None:
    """Delete ``<base>/<as_of>/<run_id>/`` for as-of dates before ``before``, except ``protected`` ones."""
    if not base.is_dir():
        return
    for day_dir in sorted(p for p in base.iterdir() if p.is_dir()):
        day = _iso_day(day_dir.name)
        if day is None or day >= before:
            continue
        for run_dir in sorted(p for p in day_dir.iterdir() if p.is_dir()):
            if str(run_dir) in protected:
                log.info("retention: keeping %s, the snapshot of a kept publication", run_dir)
            elif _touched_since(run_dir, fresh):
                log.info("retention: keeping %s, written to within the last hour", run_dir)
            else:
                _delete(store, run_dir, report, report.run_dirs)
        if store.local and not report.dry_run and not any(day_dir.iterdir()):
            day_dir.rmdir()  # an object store has no empty directories


def _iso_day(name: str) -> date | None:
    try:
        return date.fromisoformat(name) if len(name) == 10 else None
    except ValueError:
        return None


# --- model directories --------------------------------------------------------------------------


def _expire_models(
    engine: sa.Engine, schema: str, store: ArtifactStore, *, keep: int, named: set[str], fresh: datetime, report: CleanupReport
) -> None:
    """Delete model directories beyond the newest ``keep`` non-champion versions, then orphan folders."""
    from recsys_tasks.registry import list_models

    models_dir = store.root / "models"
    records = list_models(engine, schema)  # newest first
    champion = next((r for r in records if r.status == "champion"), None)
    protected = {*named, *((champion.model_version, champion.parent_version) if champion else ())}
    deleted = _deleted_versions(engine, schema, add_column=not report.dry_run)
    for record in [r for r in records if r.status != "champion"][keep:]:
        path = store.path(record.artifact_uri)
        if record.model_version in protected or record.model_version in deleted:
            continue
        if str(path.parent).rstrip("/") != str(models_dir).rstrip("/"):
            log.warning("retention: not deleting %s of %s: it is outside %s", path, record.model_version, models_dir)
            continue
        if path.exists():
            _delete(store, path, report, report.models)
        if not report.dry_run:  # also when the directory had gone already: the registry says so from now on
            with engine.begin() as conn:
                conn.execute(
                    statement("update_model_artifact_deleted", schema=schema),
                    {"model_version": record.model_version, "now": now_iso()},
                )
    known = {r.model_version for r in records}
    for entry in sorted(models_dir.iterdir()) if models_dir.is_dir() else ():
        orphan = entry.name.endswith(".partial") or entry.name not in known
        if entry.is_dir() and orphan and not _touched_since(entry, fresh):
            _delete(store, entry, report, report.orphans)


def _deleted_versions(engine: sa.Engine, schema: str, *, add_column: bool) -> set[str]:
    """Versions already marked deleted; adds the marking column to SQLite files made before it existed."""
    columns = {c["name"] for c in sa.inspect(engine).get_columns("model_registry", schema=schema)}
    if "artifact_deleted_at" not in columns:
        if add_column and engine.dialect.name == "sqlite":
            with engine.begin() as conn:
                conn.exec_driver_sql(load_sql("add_artifact_deleted_column", dialect="sqlite", schema=schema))
        return set()
    with engine.connect() as conn:
        return {v for (v,) in conn.execute(statement("select_deleted_models", schema=schema))}


# --- files --------------------------------------------------------------------------------------


def _touched_since(path: UPath, instant: datetime) -> bool:
    """Whether any file in the tree at ``path`` was modified at or after ``instant`` (or, locally, the directory)."""
    limit = instant.timestamp()
    if isinstance(path, Path) and path.stat().st_mtime >= limit:
        return True
    return any(p.stat().st_mtime >= limit for p in path.rglob("*") if p.is_file())


def _delete(store: ArtifactStore, path: UPath, report: CleanupReport, listing: list[str]) -> None:
    """Delete a directory tree (log only in a dry run); a local model directory never looks whole half-deleted."""
    log.info("retention: %s %s", _verb(report), path)
    listing.append(str(path))
    if report.dry_run:
        return
    if not store.local:  # objects go one by one; the registry marks the version deleted afterwards
        store.remove(path)
        return
    path = Path(path)
    if path.parent.name == "models" and not path.name.endswith(".partial"):
        # Renamed first: a crash mid-delete leaves a *.partial, which the next cleanup removes.
        doomed = path.with_name(path.name + ".partial")
        shutil.rmtree(doomed, ignore_errors=True)
        path = path.replace(doomed)
    shutil.rmtree(path)


def _verb(report: CleanupReport) -> str:
    return "would delete" if report.dry_run else "deleting"
