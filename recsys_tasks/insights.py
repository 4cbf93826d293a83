"""Read-only views of the output schema for people: the registry timeline, metric history,
validation outcomes, one user's published top-K and one item's neighbours.

The Airflow UI plugin (``plugins/recsys_ui``) is wiring around these functions: it resolves the
``recsys_warehouse`` connection and the configuration and turns the named exceptions below into
HTTP answers. Every statement is a ``sql/ui_*.sql`` file with bound parameters; ids typed by a
person are checked against ``ID_PATTERN`` before they reach the database. Results are plain
JSON-ready dicts (dates as ISO strings) so the same code serves PostgreSQL and SQLite.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date
from pathlib import Path, PurePosixPath
from typing import Any

import sqlalchemy as sa
from upath import UPath

from recsys_tasks.config import RecsysConfig
from recsys_tasks.data.warehouse import create_engine
from recsys_tasks.sqlfiles import statement
from recsys_tasks.storage import ArtifactStore
from recsys_tasks.timeutil import as_date, iso_or_none
from recsys_tasks.validation.checks import (
    DTYPE_EXPECTATION,
    ITEMS_IN_CATALOGUE,
    NO_DUPLICATE_ROWS,
    TYPE_SHARE,
    UNIQUE_EVENT_IDS_KEY,
    UNPADDED_IDS,
)

#: What a user or item id typed into the UI may look like (ids of the warehouse are text).
ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:@-]{1,128}$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_METRIC = re.compile(r"^(hr|ndcg|mrr|coverage)@\d{1,4}$")
_SEGMENT = re.compile(r"^[A-Za-z0-9_.:@-]{1,64}$")
_RUN_ID_MAX = 250
#: Checks the pipeline computes itself (validation.checks): stored with the rest, absent from Data Docs.
_COMPUTED_CHECKS = frozenset({DTYPE_EXPECTATION, ITEMS_IN_CATALOGUE, TYPE_SHARE, NO_DUPLICATE_ROWS, UNPADDED_IDS})
#: ... and those stored under a GX expectation's name but counted by the pipeline (details: "key: ...").
_COMPUTED_KEYS = frozenset({UNIQUE_EVENT_IDS_KEY})

#: The Data Docs directory name a run writes under its run directory (see stages.validate.run).
DATA_DOCS_DIR = "data_docs"


class InsightsError(Exception):
    """Base of the errors a reader of the insights can cause or meet."""


class InvalidInput(InsightsError, ValueError):
    """A parameter typed by a person is malformed; the message says what is allowed."""


class NotFound(InsightsError, LookupError):
    """The requested user, item, run or publication does not exist; the message says which."""


class NotAvailable(InsightsError):
    """The output schema (or an optional table of it) does not exist yet; the message says what to run."""


def create_reader_engine(url: str | sa.URL, *, output_schema: str) -> sa.Engine:
    """An engine whose sessions cannot write: read-only transactions on PostgreSQL, query_only on SQLite."""
    dialect = sa.engine.make_url(url).get_backend_name()
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if dialect == "postgresql":
        kwargs["connect_args"] = {"options": "-c default_transaction_read_only=on -c statement_timeout=10000"}
    engine = create_engine(url, output_schema=output_schema, **kwargs)
    if dialect == "sqlite":

        @sa.event.listens_for(engine, "connect")
        def _query_only(dbapi_conn: Any, _record: Any) -> None:  # runs after the ATTACH hook
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA query_only = ON")
            cursor.close()

    return engine


def _matching(pattern: re.Pattern[str], value: Any, message: str) -> str:
    """``value`` if it is a string ``pattern`` matches, else ``InvalidInput(message)``."""
    if isinstance(value, str) and pattern.match(value):
        return value
    raise InvalidInput(message)


def check_id(value: str, *, kind: str) -> str:
    """Return ``value`` if it is a well-formed user/item id, else raise ``InvalidInput``."""
    shown = value[:40] if isinstance(value, str) else value
    allowed = "use 1 to 128 letters, digits or the characters _ . : @ -"
    return _matching(ID_PATTERN, value, f"{kind} id {shown!r} is not valid: {allowed}")


def check_date(value: str | None, *, key: str = "as_of") -> str | None:
    """Return an ISO date string (or None), else raise ``InvalidInput``."""
    if value is None:
        return None
    _matching(_ISO_DATE, value, f"{key}={str(value)[:40]!r} is not an ISO date (YYYY-MM-DD)")
    try:
        date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{key}={value!r} is not a calendar date") from None
    return value


def check_run_id(value: str) -> str:
    """Return an Airflow run id if it is printable and of sane length, else raise ``InvalidInput``."""
    if not value or len(value) > _RUN_ID_MAX or not value.isprintable():
        raise InvalidInput(f"run id must be 1 to {_RUN_ID_MAX} printable characters")
    return value


def check_limit(value: int, *, maximum: int, key: str = "limit") -> int:
    """Return ``value`` if ``1 <= value <= maximum``, else raise ``InvalidInput``."""
    if not 1 <= value <= maximum:
        raise InvalidInput(f"{key}={value} must be between 1 and {maximum}")
    return value


def as_of_text(value: Any) -> str | None:
    return None if value is None else as_date(value).isoformat()


def _json(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    return json.loads(value) if isinstance(value, str) else dict(value)


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


def _finite(value: Any) -> float | None:
    return None if value is None or not math.isfinite(float(value)) else float(value)


def _same(value: Any) -> Any:
    return value


#: JSON key -> how the column of the same name becomes JSON, for each kind of row the pages list.
_Fields = Mapping[str, Callable[[Any], Any]]
_RUN: _Fields = {
    "run_id": _same, "as_of": as_of_text, "interval_events": _same, "success": bool, "docs_uri": _same,
    "created_at": iso_or_none,
}
_RESULT: _Fields = {
    "suite": _same, "expectation": _same, "column": _same, "severity": _same, "success": bool,
    "observed_value": _same, "details": _same,
}
_POINT: _Fields = {
    "as_of": as_of_text, "run_id": _same, "role": _same, "model_version": _same, "value": float, "users": _same,
    "promoted": bool,
}
_PUBLICATION: _Fields = {
    "as_of": as_of_text, "run_id": _same, "model_version": _same, "users": _same, "rows": _same, "top_k": _same,
    "published_at": iso_or_none,
}
_MODEL: _Fields = {
    "model_version": _same, "parent_version": _same, "kind": _same, "status": _same, "as_of": as_of_text,
    "data_start": iso_or_none, "data_end": iso_or_none, "holdout_users": _same, "decision": _same, "metrics": _json,
    "created_at": iso_or_none, "status_changed_at": iso_or_none, "dag_id": _same, "run_id": _same,
}
#: A version's judgement: its metric and the one it was judged against on the same holdout, the
#: delta, and the interval of the relative delta (an unbounded gain over a reference at 0 is null).
_JUDGEMENT: _Fields = {
    "primary_metric": _num, "judged_against": _same, "judged_against_role": _same, "judged_run_id": _same,
    "judged_as_of": as_of_text, "reference_primary_metric": _num, "delta": _num, "relative_delta": _finite,
    "delta_low": _finite, "delta_high": _finite, "confidence": _num, "holdout_n": _same,
}


def records(rows: Iterable[sa.RowMapping], fields: _Fields, **columns: str) -> list[dict[str, Any]]:
    """``rows`` as JSON-ready dicts: each ``fields`` key from its column (same name, or ``columns[key]``)."""
    return [{key: convert(r[columns.get(key, key)]) for key, convert in fields.items()} for r in rows]


def fetch_rows(engine: sa.Engine, statement: sa.TextClause, params: Mapping[str, Any]) -> list[sa.RowMapping]:
    """Run one read-only statement; a missing output table becomes ``NotAvailable``."""
    try:
        with engine.connect() as conn:
            return list(conn.execute(statement, dict(params)).mappings())
    except (sa.exc.ProgrammingError, sa.exc.OperationalError) as exc:
        text = str(exc.orig).lower()
        if "does not exist" in text or "no such table" in text or "undefinedtable" in text:
            raise NotAvailable(
                f"a table this page reads does not exist yet ({str(exc.orig).strip().splitlines()[0]}). "
                "Run the recsys_retrain DAG once: it creates the output schema."
            ) from exc
        raise


def output_sql(name: str, cfg: RecsysConfig, engine: sa.Engine, **identifiers: str) -> sa.TextClause:
    """Statement ``name`` for the engine's dialect, over the configured output schema."""
    return statement(name, dialect=engine.dialect.name, schema=cfg.warehouse.output_schema, **identifiers)


def registry_timeline(engine: sa.Engine, cfg: RecsysConfig, *, limit: int = 50) -> dict[str, Any]:
    """The newest model versions, newest first, each with its primary-metric delta against the model
    it was judged against on the same holdout (the champion of the run that judged it, else most-popular)."""
    check_limit(limit, maximum=500)
    metric = cfg.evaluation.primary_metric
    rows = fetch_rows(engine, output_sql("ui_select_registry_timeline", cfg, engine), {"limit": limit})
    judged: dict[str, dict[str, Any]] = {}
    if rows:
        stmt = output_sql("ui_select_judgements", cfg, engine).bindparams(sa.bindparam("versions", expanding=True))
        found = fetch_rows(engine, stmt, {"versions": sorted({r["model_version"] for r in rows}), "metric": metric})
        # Oldest run first, champion after baseline: the last row of a version is its judgement.
        judged = {j["model_version"]: record for j, record in zip(found, records(found, _JUDGEMENT), strict=True)}
    versions = []
    for model in records(rows, _MODEL):
        unjudged = {**dict.fromkeys(_JUDGEMENT), "primary_metric": _num(model["metrics"].get(metric))}
        versions.append({**model, **judged.get(model["model_version"], unjudged)})
    return {"metric": metric, "versions": versions}


def metric_history(
    engine: sa.Engine, cfg: RecsysConfig, *, metric: str | None = None, segment: str = "all", limit: int = 300
) -> dict[str, Any]:
    """One metric of one segment per run and role, oldest first, grouped into one series per role,
    with the metrics and segments there are to choose from."""
    metric = metric or cfg.evaluation.primary_metric
    _matching(_METRIC, metric, f"metric={metric[:40]!r}: use hr@K, ndcg@K, mrr@K or coverage@K")
    _matching(_SEGMENT, segment, f"segment={str(segment)[:40]!r}: use 1 to 64 letters, digits or _ . : @ -")
    check_limit(limit, maximum=5000)
    params = {"metric": metric, "segment": segment, "limit": limit}
    rows = fetch_rows(engine, output_sql("ui_select_metric_history", cfg, engine), params)
    points = records(reversed(rows), _POINT)
    series: dict[str, list[dict[str, Any]]] = {"champion": [], "challenger": [], "baseline": []}
    for p in points:
        series.setdefault(p["role"], []).append(p)
    names = fetch_rows(engine, output_sql("ui_select_metric_names", cfg, engine), {})
    return {
        "metric": metric,
        "segment": segment,
        "points": points,
        "series": series,
        "metrics": sorted({r["metric"] for r in names}, key=_metric_order),
        "segments": sorted({r["segment"] for r in names}, key=lambda s: (s != "all", s)),
    }


def _metric_order(metric: str) -> tuple[str, int]:
    name, _, k = metric.partition("@")
    return name, int(k) if k.isdigit() else 0


def validation_summary(
    engine: sa.Engine, cfg: RecsysConfig, *, run_id: str | None = None, runs: int = 20
) -> dict[str, Any]:
    """The newest validation runs and every expectation outcome of one run (the newest by default),
    each marked with whether Great Expectations evaluated it (and so its Data Docs show it), with
    the counts per suite."""
    check_limit(runs, maximum=500, key="runs")
    if run_id is not None:
        check_run_id(run_id)
    run_rows = fetch_rows(engine, output_sql("ui_select_validation_runs", cfg, engine), {"limit": runs})
    listed = [{**run, "docs_path": data_docs_relpath(cfg, run["docs_uri"])} for run in records(run_rows, _RUN)]
    selected = run_id if run_id is not None else (listed[0]["run_id"] if listed else None)
    results: list[dict[str, Any]] = []
    if selected is not None:
        res = fetch_rows(engine, output_sql("ui_select_validation_results", cfg, engine), {"run_id": selected})
        # An older run than the list shows is fine as long as it has results.
        if run_id is not None and not res and not any(r["run_id"] == run_id for r in listed):
            raise NotFound(f"validation run {run_id!r} has no recorded results")
        results = [
            {**r, "in_data_docs": _in_data_docs(r)}
            for r in records(res, _RESULT, column="column_name")
        ]
    return {"runs": listed, "run_id": selected, "results": results, "suites": _suite_counts(results)}


def _in_data_docs(result: Mapping[str, Any]) -> bool:
    """Whether Great Expectations evaluated this stored outcome (so its Data Docs show it)."""
    key = str(result.get("details") or "").split(":", 1)[0]
    return result["expectation"] not in _COMPUTED_CHECKS and key not in _COMPUTED_KEYS


def _suite_counts(results: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per suite: checks, failures, and how many Great Expectations evaluated (its Data Docs page's count)."""
    counts: dict[str, dict[str, Any]] = {}
    for r in results:
        c = counts.setdefault(r["suite"], {"suite": r["suite"], "checks": 0, "failed": 0, "in_data_docs": 0})
        c["checks"] += 1
        c["failed"] += not r["success"]
        c["in_data_docs"] += r["in_data_docs"]
    return sorted(counts.values(), key=lambda c: c["suite"])


def latest_publication(engine: sa.Engine, cfg: RecsysConfig, *, as_of: str | None = None) -> dict[str, Any] | None:
    """The publication of ``as_of`` (the newest when None), or None."""
    check_date(as_of)
    if as_of is None:
        rows = fetch_rows(engine, output_sql("ui_select_latest_publication", cfg, engine), {})
    else:
        rows = fetch_rows(engine, output_sql("select_publication", cfg, engine), {"as_of": as_of})
    return records(rows[:1], _PUBLICATION)[0] if rows else None


def data_docs_relpath(cfg: RecsysConfig, docs_uri: str | None) -> str | None:
    """``docs_uri`` relative to the artifact root when it is a Data Docs file under it, else None."""
    if not docs_uri:
        return None
    store = ArtifactStore.from_config(cfg)
    root = str(store.root).rstrip("/")
    try:
        if store.local:
            relpath = Path(docs_uri.removeprefix("file://")).resolve().relative_to(Path(store.root)).as_posix()
        elif docs_uri.startswith(root + "/"):
            relpath = docs_uri[len(root) + 1 :]
        else:
            return None
        resolve_data_docs(cfg, relpath)
    except (ValueError, NotFound, InvalidInput):
        return None
    return relpath


def resolve_data_docs(cfg: RecsysConfig, relpath: str) -> UPath:
    """The file ``relpath`` under the artifact root (local or remote), only if it lies inside a Data Docs directory.

    Raises ``InvalidInput`` for paths that leave the root (``..``, absolute, symlinks pointing out)
    or point outside a ``data_docs`` directory (snapshots and models are not served), ``NotFound``
    when the file does not exist.
    """
    store = ArtifactStore.from_config(cfg)
    if not relpath or "\x00" in relpath or relpath.startswith("/") or Path(relpath).is_absolute():
        raise InvalidInput("a Data Docs path must be relative to the artifact root")
    parts = PurePosixPath(relpath).parts
    if ".." in parts:
        raise InvalidInput("a Data Docs path must stay inside the artifact root")
    target = store.root.joinpath(*parts)
    if store.local:
        try:  # a symlink may still lead out of the root
            Path(target).resolve().relative_to(Path(store.root))
        except ValueError:
            raise InvalidInput("a Data Docs path must stay inside the artifact root") from None
    if DATA_DOCS_DIR not in parts[:-1]:
        raise InvalidInput(f"only files inside a {DATA_DOCS_DIR}/ directory of a run are served")
    if not target.is_file():
        raise NotFound(f"no Data Docs file {PurePosixPath(*parts).as_posix()!r} under the artifact root")
    return target


__all__: Sequence[str] = [
    "DATA_DOCS_DIR",
    "ID_PATTERN",
    "InsightsError",
    "InvalidInput",
    "NotAvailable",
    "NotFound",
    "check_date",
    "check_id",
    "check_limit",
    "check_run_id",
    "create_reader_engine",
    "data_docs_relpath",
    "fetch_rows",
    "latest_publication",
    "metric_history",
    "output_sql",
    "records",
    "registry_timeline",
    "resolve_data_docs",
    "validation_summary",
]
