"""The model registry: one row per model version in ``<schema>.model_registry``.

Statuses: ``candidate`` (trained, not yet judged), ``champion`` (exactly one; a unique partial index
enforces it in the database), ``rejected`` (lost its evaluation) and ``retired`` (a former champion).
A model version is immutable: its artifact directory is never rewritten and its checksum is stored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from upath import UPath

from recsys_tasks.sqlfiles import statement
from recsys_tasks.storage import ArtifactStore
from recsys_tasks.timeutil import as_date, iso, now_iso, utc

log = logging.getLogger(__name__)

STATUSES = ("candidate", "champion", "rejected", "retired")


class RegistryError(RuntimeError):
    """The registry cannot do what was asked; the message says which version and why."""


class ModelIntegrityError(RegistryError):
    """A registered model's files are missing, unreadable or differ from the registry's checksum."""


#: What to do when a model fails verification (said in every ModelIntegrityError).
RECOVERY = (
    "Nothing was written with it. `python -m recsys_tasks.cli models verify` lists which versions are intact; "
    "`python -m recsys_tasks.cli rollback --to <version>` makes an intact one champion, or trigger "
    "recsys_retrain with full_retrain=true to train a new model judged against most-popular alone."
)


@dataclass(frozen=True)
class ModelRecord:
    """A registry row."""

    model_version: str
    parent_version: str | None
    kind: str
    status: str
    dag_id: str
    run_id: str
    as_of: date
    data_start: datetime
    data_end: datetime
    artifact_uri: str
    checksum: str
    config: dict[str, Any]
    metrics: dict[str, Any]
    holdout_users: int | None
    decision: str | None

    def verified_dir(self, store: ArtifactStore) -> Path:
        """A local directory with the model's files, checked against the checksum stored at registration.

        A model in a local store is checked where it lies; one in a remote store is copied into the
        worker's cache first (and a cached copy is checked again on every use).
        """
        source = store.path(self.artifact_uri)
        where = f"model {self.model_version} ({self.status}) at {self.artifact_uri}"
        try:
            if not source.is_dir():
                raise ModelIntegrityError(f"{where}: the directory is missing (expected sha256 {self.checksum}). {RECOVERY}")
            local = Path(source) if store.is_local(source) else _cached_copy(store, source, self.model_version, self.checksum)
            actual = directory_checksum(local)
        except OSError as exc:
            raise ModelIntegrityError(f"{where}: its files cannot be read ({exc}). {RECOVERY}") from exc
        if actual != self.checksum:
            raise ModelIntegrityError(
                f"{where}: the files do not match the registry (expected sha256 {self.checksum}, found {actual}); "
                f"they changed after registration (corruption or a manual edit). {RECOVERY}"
            )
        return local


def _cached_copy(store: ArtifactStore, source: UPath, model_version: str, checksum: str) -> Path:
    """The model's files in ``<cache>/models/<version>/``: the cached copy if it is intact, else fetched again."""
    final = store.cache_dir / "models" / model_version
    if final.is_dir() and directory_checksum(final) == checksum:
        return final
    tmp = final.with_name(final.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    store.get_tree(source, tmp)
    shutil.rmtree(final, ignore_errors=True)
    tmp.replace(final)
    return final


def directory_checksum(path: Path) -> str:
    """sha256 over the relative names and bytes of every file in ``path`` (sorted)."""
    digest = hashlib.sha256()
    for file in sorted(p for p in Path(path).rglob("*") if p.is_file()):
        digest.update(file.relative_to(path).as_posix().encode())
        with file.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def store_model(trained_dir: Path, store: ArtifactStore, model_version: str) -> tuple[str, str]:
    """Put a trained model's files into ``<artifact_root>/models/<version>/``; return (URI, checksum).

    Only the top-level files (weights + sidecar) are stored; resume checkpoints stay with the run.
    The files are gathered in a local directory first (the checksum is taken there), then put into
    the store: locally by renaming a complete directory, remotely object by object (a version is
    registered only after all of its objects exist). A directory left by an attempt that never
    registered is replaced.
    """
    target = store.root / "models" / model_version
    staging = Path(target.with_name(model_version + ".partial")) if store.local else store.scratch("models", model_version)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for file in sorted(Path(trained_dir).iterdir()):
        if file.is_file():
            shutil.copy2(file, staging / file.name)
    checksum = directory_checksum(staging)
    store.remove(target)
    if store.local:
        staging.replace(Path(target))
    else:
        store.put_tree(staging, target)
        shutil.rmtree(staging, ignore_errors=True)
    return store.uri(target), checksum


def register_model(
    engine: sa.Engine,
    schema: str,
    *,
    model_version: str,
    parent_version: str | None,
    kind: str,
    dag_id: str,
    run_id: str,
    as_of: date,
    data_start: datetime,
    data_end: datetime,
    artifact_uri: str,
    checksum: str,
    config: Mapping[str, Any],
    metrics: Mapping[str, Any] | None = None,
    holdout_users: int | None = None,
) -> ModelRecord:
    """Insert a candidate row (no-op if the version exists) and return the stored row."""
    params = {
        "model_version": model_version,
        "parent_version": parent_version,
        "kind": kind,
        "dag_id": dag_id,
        "run_id": run_id,
        "as_of": iso(as_of),
        "data_start": iso(data_start),
        "data_end": iso(data_end),
        "artifact_uri": artifact_uri,
        "checksum": checksum,
        "config": json.dumps(config, sort_keys=True, default=str),
        "metrics": json.dumps(metrics or {}, sort_keys=True),
        "holdout_users": holdout_users,
    }
    with engine.begin() as conn:
        conn.execute(statement("insert_model", schema=schema), params)
    record = get_model(engine, schema, model_version)
    assert record is not None
    return record


def get_model(engine: sa.Engine, schema: str, model_version: str) -> ModelRecord | None:
    """The registry row of ``model_version``, or None."""
    with engine.connect() as conn:
        row = conn.execute(statement("select_model", schema=schema), {"model_version": model_version}).first()
    return _record(row) if row else None


def get_champion(engine: sa.Engine, schema: str) -> ModelRecord | None:
    """The current champion, or None before the first promotion."""
    with engine.connect() as conn:
        rows = conn.execute(statement("select_champion", schema=schema)).all()
    if len(rows) > 1:  # impossible with the unique index; a hand-edited table would show it here
        raise RegistryError(f"{schema}.model_registry has {len(rows)} champions; exactly one is allowed")
    return _record(rows[0]) if rows else None


def list_models(engine: sa.Engine, schema: str) -> list[ModelRecord]:
    """Every registered model, newest first."""
    with engine.connect() as conn:
        return [_record(r) for r in conn.execute(statement("select_models", schema=schema))]


def set_metrics(engine: sa.Engine, schema: str, model_version: str, metrics: Mapping[str, Any], holdout_users: int) -> None:
    """Store the challenger metrics of the run that judged ``model_version``."""
    with engine.begin() as conn:
        conn.execute(
            statement("update_model_metrics", schema=schema),
            {"model_version": model_version, "metrics": json.dumps(dict(metrics), sort_keys=True), "holdout_users": holdout_users},
        )


def champion_at(engine: sa.Engine, schema: str, as_of: date) -> ModelRecord | None:
    """The version that publishes as-of date ``as_of``: the newest champion period starting on or before it.

    For the newest date this is the current champion; for an older date (a backfill) it is the
    version that was champion then, trained on data before that date's cutoff.
    """
    with engine.connect() as conn:
        row = conn.execute(statement("select_champion_at", schema=schema), {"as_of": iso(as_date(as_of))}).first()
    return _record(row) if row else None


def champion_before(engine: sa.Engine, schema: str, as_of: date) -> ModelRecord | None:
    """The champion a run for ``as_of`` is judged against and warm-starts from: the one of the day before."""
    return champion_at(engine, schema, as_date(as_of) - timedelta(days=1))


@dataclass(frozen=True)
class ChampionPeriod:
    """``model_version`` publishes the as-of dates ``[champion_from, champion_to)`` (``None``: still champion)."""

    champion_from: date
    champion_to: date | None
    model_version: str
    decision: str | None


def champion_timeline(engine: sa.Engine, schema: str) -> list[ChampionPeriod]:
    """Every champion period, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(statement("select_champion_periods", schema=schema)).all()
    return [
        ChampionPeriod(as_date(r.champion_from), as_date(r.champion_to) if r.champion_to else None, r.model_version, r.decision)
        for r in rows
    ]


def promote(engine: sa.Engine, schema: str, model_version: str, *, decision: str, as_of: date | None = None) -> None:
    """Make ``model_version`` the champion of as-of date ``as_of`` onwards, in one transaction.

    When no newer period exists it becomes the champion and the previous one is retired. A
    promotion for a date older than the newest period (a backfill) only starts a period between
    two existing ones: the current champion stays, and the version is recorded as ``retired``.
    Without ``as_of`` (a rollback, a hand-made champion) the period starts at the newest date the
    registry knows: the newest period, the newest publication or the version's own as-of date.
    """
    with engine.begin() as conn:
        row = _locked_row(conn, schema, model_version)
        periods = [(as_date(r.champion_from), r.model_version) for r in conn.execute(statement("select_champion_periods", schema=schema))]
        newest = periods[-1][0] if periods else None
        if as_of is None:
            if row.status == "champion" and periods and periods[-1][1] == model_version:
                return
            published = conn.execute(statement("select_latest_publication", schema=schema)).first()
            candidates = [as_date(row.as_of), newest, as_date(published.as_of) if published else None]
            as_of = max(d for d in candidates if d is not None)
        as_of = as_date(as_of)
        if as_of < as_date(row.as_of):
            raise RegistryError(
                f"{model_version} was trained for as-of {as_date(row.as_of)}, so it cannot be champion of the earlier "
                f"date {as_of}: that would publish with data from after the date's cutoff"
            )
        if (as_of, model_version) in periods:
            return  # a rerun of the same promotion
        stamp = now_iso()
        conn.execute(
            statement("upsert_champion_period", schema=schema),
            {"champion_from": iso(as_of), "model_version": model_version, "decision": decision, "now": stamp},
        )
        if newest is None or as_of >= newest:
            conn.execute(statement("retire_champion", schema=schema), {"decision": f"replaced by {model_version}", "now": stamp})
            status, note = "champion", decision
        else:
            until = min(d for d, _ in periods if d > as_of)
            status = "retired" if row.status != "champion" else "champion"
            note = f"champion of as-of [{as_of}, {until}) by a backfill; the current champion stays. {decision}"
        conn.execute(
            statement("update_model_status", schema=schema),
            {"model_version": model_version, "status": status, "decision": note, "now": stamp},
        )
    log.info("promoted %s to champion from as-of %s: %s", model_version, as_of, decision)


def set_status(engine: sa.Engine, schema: str, model_version: str, status: str, *, decision: str) -> None:
    """Mark a non-champion version ``rejected``/``candidate``/``retired`` with the reason."""
    if status not in STATUSES or status == "champion":
        raise RegistryError(f"status {status!r} cannot be set directly; use promote() for champion")
    with engine.begin() as conn:
        row = _locked_row(conn, schema, model_version)
        if row.status == "champion":
            raise RegistryError(f"{model_version} is the champion; promote another version instead")
        conn.execute(
            statement("update_model_status", schema=schema),
            {"model_version": model_version, "status": status, "decision": decision, "now": now_iso()},
        )


def _locked_row(conn: sa.Connection, schema: str, model_version: str) -> sa.Row:
    """``model_version``'s registry row, read after taking the registry lock; a named error if it is missing."""
    _lock(conn, schema)
    row = conn.execute(statement("select_model", schema=schema), {"model_version": model_version}).first()
    if row is None:
        raise RegistryError(f"model version {model_version!r} is not in {schema}.model_registry")
    return row


def _lock(conn: sa.Connection, schema: str) -> None:
    """Serialise registry changes (two runs must not both promote)."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"recsys-registry-{schema}"})


def _record(row: sa.Row) -> ModelRecord:
    m = row._mapping

    def as_json(value: Any) -> dict[str, Any]:
        return json.loads(value) if isinstance(value, str) else dict(value or {})

    return ModelRecord(
        model_version=m["model_version"],
        parent_version=m["parent_version"],
        kind=m["kind"],
        status=m["status"],
        dag_id=m["dag_id"],
        run_id=m["run_id"],
        as_of=as_date(m["as_of"]),
        data_start=utc(m["data_start"]),
        data_end=utc(m["data_end"]),
        artifact_uri=m["artifact_uri"],
        checksum=m["checksum"],
        config=as_json(m["config"]),
        metrics=as_json(m["metrics"]),
        holdout_users=m["holdout_users"],
        decision=m["decision"],
    )
