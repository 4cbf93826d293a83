"""The stages of one retraining run, each a plain function a DAG task calls in one line.

Every stage takes a :class:`RunContext` (which interval, which warehouse, which config) plus the
small values earlier stages returned, and returns a small JSON-ready dict for XCom: paths, counts,
versions and metrics, never frames or tensors. Every stage is safe to rerun for the same interval.

Run layout (``<artifact_root>/<dag_id>/<as_of>/<run_id>/``)::

    snapshot/events.parquet, items.parquet   raw extract of [history_start, interval_end)
    clean/events.parquet, items.parquet      after counted, documented cleaning
    data_docs/                               Great Expectations Data Docs of this run
    train/                                   the challenger being trained (checkpoints)
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from functools import cached_property
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from recsys_tasks.config import RecsysConfig, to_dict

log = logging.getLogger(__name__)


class NothingToPublish(RuntimeError):
    """There is no champion yet, so no recommendations can be published."""


@dataclass(frozen=True)
class RunContext:
    """What a run is about: its interval, its warehouse and its configuration."""

    dag_id: str
    run_id: str
    interval_start: datetime
    interval_end: datetime
    warehouse_url: str
    config: RecsysConfig = field(default_factory=RecsysConfig)

    def __post_init__(self) -> None:
        for name in ("interval_start", "interval_end"):
            value = getattr(self, name)
            if value.tzinfo is None:
                object.__setattr__(self, name, value.replace(tzinfo=timezone.utc))
        if not self.interval_start < self.interval_end:
            raise ValueError(f"data interval [{self.interval_start}, {self.interval_end}) is empty")

    @property
    def as_of(self) -> date:
        """The day the run is about: the (UTC) date of the end of its data interval."""
        return self.interval_end.astimezone(timezone.utc).date()

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

    @property
    def artifact_root(self) -> Path:
        """Absolute, so paths handed between tasks (and to Great Expectations) never depend on a cwd."""
        return Path(self.config.artifact_root).expanduser().resolve()

    @property
    def run_dir(self) -> Path:
        safe_run = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.run_id)
        return self.artifact_root / self.dag_id / self.as_of.isoformat() / safe_run

    @cached_property
    def engine(self) -> sa.Engine:
        from recsys_tasks.warehouse import create_engine

        return create_engine(self.warehouse_url, output_schema=self.schema)

    def dispose(self) -> None:
        if "engine" in self.__dict__:
            self.engine.dispose()


def make_context(
    *,
    dag_id: str,
    run_id: str,
    interval_start: datetime,
    interval_end: datetime,
    warehouse_url: str,
    overrides: Mapping[str, Any] | None = None,
    config: RecsysConfig | None = None,
) -> RunContext:
    """A context with ``$RECSYS_CONFIG`` (or defaults) plus the run's overrides applied."""
    cfg = config or RecsysConfig.from_env()
    if overrides:
        cfg = cfg.with_overrides({k: v for k, v in overrides.items() if v is not None})
    return RunContext(dag_id, run_id, interval_start, interval_end, warehouse_url, cfg)


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
            raise ValueError(f"as_of={as_of!r} is not a date; use YYYY-MM-DD") from None
        stop = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
        return stop - length, stop
    if start is not None and end is not None and start < end:
        return start, end
    anchor = end or fallback
    if anchor is None:
        raise ValueError("the run has no data interval, logical date or as_of param; pass as_of=YYYY-MM-DD")
    return anchor - length, anchor


# ---------------------------------------------------------------------------------------------- extract


def extract(ctx: RunContext) -> dict[str, Any]:
    """Stream ``[history_start, interval_end)`` events and the catalogue into the run's snapshot."""
    from recsys_tasks.warehouse import ensure_output_schema, extract_interval

    ensure_output_schema(ctx.engine, ctx.schema)
    log.info(
        "extracting events of [%s, %s) (interval [%s, %s) plus %d days of history)",
        ctx.history_start, ctx.interval_end, ctx.interval_start, ctx.interval_end, ctx.config.window.history_days,
    )
    snap = extract_interval(
        ctx.engine, ctx.config.warehouse, start=ctx.history_start, end=ctx.interval_end, out_dir=ctx.run_dir / "snapshot"
    )
    return {"snapshot": str(snap.path), "events": snap.events, "items": snap.items}


# ---------------------------------------------------------------------------------------------- validate


def validate(ctx: RunContext, snapshot: str) -> dict[str, Any]:
    """Clean and validate the snapshot; persist the results; raise on a blocking failure."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from recsys_tasks.registry import iso
    from recsys_tasks.sqlfiles import load_sql
    from recsys_tasks.validation import clean_events, clean_items, raise_for_blocking, validate_snapshot
    from recsys_tasks.warehouse import EVENTS_SCHEMA, ITEMS_SCHEMA, read_snapshot

    events, items = read_snapshot(Path(snapshot))
    events, event_counts = clean_events(events)
    items, item_counts = clean_items(items)
    counts = {**{f"events.{k}": v for k, v in event_counts.items()}, **{f"items.{k}": v for k, v in item_counts.items()}}
    with ctx.engine.connect() as conn:
        rows = conn.execute(
            sa.text(load_sql("select_previous_volumes", schema=ctx.schema)),
            {"as_of": ctx.as_of.isoformat(), "limit": ctx.config.validation.volume_history_runs},
        ).all()
    previous = [int(r.interval_events) for r in reversed(rows)]  # oldest first
    report = validate_snapshot(
        events,
        items,
        interval_start=ctx.interval_start,
        interval_end=ctx.interval_end,
        history_start=ctx.history_start,
        config=ctx.config.validation,
        previous_volumes=previous,
        docs_dir=ctx.run_dir / "data_docs",
        run_id=ctx.run_id,
        cleaning_counts=counts,
        event_duplicates_dropped=event_counts["exact_duplicates_dropped"],
    )
    interval_events = int(((events["event_ts"] >= ctx.interval_start) & (events["event_ts"] < ctx.interval_end)).sum()) if "event_ts" in events else 0
    stamp = iso(datetime.now(timezone.utc))
    result_rows = [{**row, "run_id": ctx.run_id, "as_of": ctx.as_of.isoformat(), "created_at": stamp} for row in report.rows()]
    with ctx.engine.begin() as conn:
        conn.execute(sa.text(load_sql("delete_validation_results", schema=ctx.schema)), {"run_id": ctx.run_id})
        if result_rows:
            conn.execute(sa.text(load_sql("insert_validation_result", schema=ctx.schema)), result_rows)
        conn.execute(
            sa.text(load_sql("upsert_validation_run", schema=ctx.schema)),
            {
                "run_id": ctx.run_id,
                "as_of": ctx.as_of.isoformat(),
                "interval_events": interval_events,
                "success": report.success,
                "docs_uri": str(report.docs_path) if report.docs_path else None,
                "created_at": stamp,
            },
        )
    if report.docs_path:
        log.info("Great Expectations Data Docs for this run: file://%s", Path(report.docs_path).resolve())
    for warning in report.warnings:
        log.warning("validation warning: %s", warning.describe())
    if ctx.config.validation.enabled:
        raise_for_blocking(report)
    elif not report.success:
        log.warning("validation.enabled is false, so these failures do not stop the run: %s", report.summary())
    clean_dir = ctx.run_dir / "clean"
    clean_dir.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(events, schema=EVENTS_SCHEMA, preserve_index=False), clean_dir / "events.parquet")
    pq.write_table(pa.Table.from_pandas(items, schema=ITEMS_SCHEMA, preserve_index=False), clean_dir / "items.parquet")
    log.info("validation passed: %d events (%d in the interval), %d items; cleaning: %s", len(events), interval_events, len(items), counts)
    return {
        "snapshot": str(clean_dir),
        "interval_events": interval_events,
        "warnings": [w.describe() for w in report.warnings],
        "cleaning": counts,
        "docs": str(report.docs_path) if report.docs_path else None,
    }


# ---------------------------------------------------------------------------------------------- train


def train(ctx: RunContext, snapshot: str, *, full_retrain: bool | None = None) -> dict[str, Any]:
    """Fine-tune the champion (or train from scratch) on events before the cutoff; register it.

    With ``train.nproc_per_node > 1`` training runs under ``torchrun`` (DDP, one process per GPU)
    in a subprocess; otherwise in this process.
    """
    from recsys_tasks.registry import get_champion, get_model, register_model, store_model
    from recsys_tasks.warehouse import ensure_output_schema

    ensure_output_schema(ctx.engine, ctx.schema)
    version = model_version_for(ctx)
    existing = get_model(ctx.engine, ctx.schema, version)
    if existing is not None:
        log.info("challenger %s was already trained and registered by this run; reusing it", version)
        return {"model_version": version, "model_dir": existing.artifact_uri, "parent_version": existing.parent_version, "reused": True}
    champion = get_champion(ctx.engine, ctx.schema)
    retrain = ctx.config.train.full_retrain if full_retrain is None else full_retrain
    init_from = champion.model_dir if champion is not None and not retrain and champion.kind == "transformer" else None
    if init_from is not None:
        log.info("warm start from champion %s", champion.model_version)
    else:
        log.info("training from scratch (%s)", "full_retrain requested" if retrain else "no champion yet")
    config = ctx.config.with_overrides({"train.full_retrain": True}) if retrain else ctx.config
    work_dir = ctx.run_dir / "train"
    if config.train.nproc_per_node > 1:
        summary = train_with_torchrun(config, snapshot=snapshot, cutoff=ctx.cutoff, out_dir=work_dir, init_from=init_from)
    else:
        summary = train_from_snapshot(config, snapshot=snapshot, cutoff=ctx.cutoff, out_dir=work_dir, init_from=init_from)
    model_dir, checksum = store_model(work_dir, ctx.artifact_root, version)
    parent = champion.model_version if init_from is not None and champion else None
    register_model(
        ctx.engine,
        ctx.schema,
        model_version=version,
        parent_version=parent,
        kind="transformer",
        dag_id=ctx.dag_id,
        run_id=ctx.run_id,
        as_of=ctx.as_of,
        data_start=ctx.history_start,
        data_end=ctx.cutoff,
        artifact_uri=str(model_dir.resolve()),
        checksum=checksum,
        config=to_dict(ctx.config),
        metrics={f"validation.{k}": v for k, v in summary["metrics"].items()},
    )
    (ctx.run_dir / "train_history.json").write_text(json.dumps(summary["history"], default=float), encoding="utf-8")
    log.info("registered challenger %s (%d epochs, %.1fs)", version, summary["epochs"], summary["seconds"])
    return {
        "model_version": version,
        "model_dir": str(model_dir),
        "parent_version": parent,
        "epochs": summary["epochs"],
        "train_seconds": round(summary["seconds"], 2),
        "validation": summary["metrics"],
    }


def train_from_snapshot(
    config: RecsysConfig,
    *,
    snapshot: str | Path,
    cutoff: datetime,
    out_dir: Path,
    init_from: Path | None = None,
) -> dict[str, Any]:
    """Build the vocabulary and sequences of events before ``cutoff`` in ``snapshot`` and train.

    Runs the same on every rank under torchrun (inputs are deterministic); only rank 0 writes.
    Returns a JSON-ready summary: metrics, history, epochs, seconds.
    """
    from recsys_tasks.data import ItemVocab, build_sequences, temporal_split
    from recsys_tasks.recommender import read_sidecar
    from recsys_tasks.train import train_model
    from recsys_tasks.warehouse import read_snapshot

    events, items = read_snapshot(Path(snapshot))
    split = temporal_split(events, cutoff, items_per_user=config.window.holdout_items_per_user)
    vocab = ItemVocab(read_sidecar(init_from)["item_ids"]) if init_from is not None else ItemVocab()
    added = vocab.extend(sorted(set(items["item_id"].dropna().astype(str))))
    added += vocab.extend(sorted(set(split.train_events["item_id"].dropna().astype(str))))
    log.info("item vocabulary: %d items (%d new tonight)", len(vocab) - 1, len(added))
    sequences = build_sequences(split.train_events, vocab)
    if sequences.num_interactions == 0:
        raise ValueError(
            f"no item events before the cutoff {cutoff:%Y-%m-%d %H:%M} in the snapshot {snapshot}; nothing to "
            "train on. Check the interval and window.history_days."
        )
    result = train_model(
        train=sequences,
        vocab=vocab,
        model_cfg=config.model,
        train_cfg=config.train,
        out_dir=Path(out_dir),
        item_text=item_texts(items) if config.model.use_item_text else None,
        init_from=init_from,
        text_cache_dir=Path(config.artifact_root).expanduser().resolve() / "text_cache",
    )
    return {"metrics": result.metrics, "history": result.history, "epochs": result.epochs, "seconds": result.seconds}


def train_with_torchrun(
    config: RecsysConfig,
    *,
    snapshot: str | Path,
    cutoff: datetime,
    out_dir: Path,
    init_from: Path | None = None,
) -> dict[str, Any]:
    """Run :func:`train_from_snapshot` under ``torchrun`` with ``train.nproc_per_node`` processes (DDP)."""
    import subprocess
    import sys

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config_file = out_dir.parent / "train_config.json"
    config_file.write_text(json.dumps(to_dict(config)), encoding="utf-8")
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={config.train.nproc_per_node}",
        "-m", "recsys_tasks.cli", "train", "--config", str(config_file), "--snapshot", str(snapshot),
        "--cutoff", cutoff.isoformat(), "--out", str(out_dir),
    ]
    if init_from is not None:
        command += ["--init-from", str(init_from)]
    log.info("training with torchrun: %s", " ".join(command))
    proc = subprocess.run(command, check=False)
    if proc.returncode != 0:
        raise RuntimeError(
            f"torchrun training failed with exit code {proc.returncode} (its log is above); with "
            f"train.nproc_per_node={config.train.nproc_per_node} every process needs its own GPU (or CPU with gloo)"
        )
    from recsys_tasks.recommender import read_sidecar

    sidecar = read_sidecar(out_dir)
    history = sidecar.get("history", [])
    return {"metrics": sidecar.get("metrics", {}), "history": history, "epochs": len(history), "seconds": float(sidecar.get("seconds", 0.0))}


def item_texts(items: Any) -> dict[str, str]:
    """``"<title> | <category>"`` per item: the text the language model encodes."""
    titles = items["title"].fillna("").astype(str)
    cats = items["category"].fillna("").astype(str)
    return {str(i): f"{t} | {c}".strip(" |") for i, t, c in zip(items["item_id"], titles, cats, strict=True)}


def model_version_for(ctx: RunContext) -> str:
    """The challenger version of a run: stable across retries of the run, unique across runs."""
    import hashlib

    digest = hashlib.sha256(f"{ctx.dag_id}/{ctx.run_id}".encode()).hexdigest()[:10]
    return f"m{ctx.as_of:%Y%m%d}-{digest}"


# ---------------------------------------------------------------------------------------------- evaluate


def evaluate(ctx: RunContext, snapshot: str, challenger_version: str, *, force_promote: bool = False) -> dict[str, Any]:
    """Score challenger, champion and most-popular on the run's holdout; store; decide."""
    from recsys_tasks.data import ItemVocab, build_sequences, temporal_split
    from recsys_tasks.evaluate import build_holdout, decide, score, store_evaluation, summary_line
    from recsys_tasks.recommender import PopularityRecommender, load_recommender
    from recsys_tasks.registry import get_champion, get_model, set_metrics
    from recsys_tasks.warehouse import read_snapshot

    cfg = ctx.config.evaluation
    events, items = read_snapshot(Path(snapshot))
    split = temporal_split(events, ctx.cutoff, items_per_user=ctx.config.window.holdout_items_per_user)
    holdout = build_holdout(split)
    log.info("holdout: %d users with events after the cutoff %s", len(holdout), ctx.cutoff)
    challenger = get_model(ctx.engine, ctx.schema, challenger_version)
    if challenger is None:
        raise ValueError(f"challenger {challenger_version} is not registered; rerun the train task")
    champion = get_champion(ctx.engine, ctx.schema)
    if champion is not None and champion.model_version == challenger_version:
        champion = None  # a rerun after promotion: nothing else to compare against
    results: dict[str, Any] = {}
    ch_rec = load_recommender(challenger.model_dir, device=ctx.config.train.device)
    results["challenger"] = score(ch_rec, holdout, k=cfg.k)
    store_evaluation(ctx.engine, ctx.schema, run_id=ctx.run_id, as_of=ctx.as_of, model_version=challenger_version, role="challenger", metrics=results["challenger"])
    # Baseline: most popular in the last 7 days before the cutoff, over the challenger's catalogue.
    vocab = ItemVocab(ch_rec.vocab.item_ids)
    popularity = PopularityRecommender.fit(build_sequences(split.train_events, vocab), vocab, recent_seconds=7 * 86400)
    results["baseline"] = score(popularity, holdout, k=cfg.k)
    store_evaluation(ctx.engine, ctx.schema, run_id=ctx.run_id, as_of=ctx.as_of, model_version="most_popular", role="baseline", metrics=results["baseline"])
    if champion is not None:
        results["champion"] = score(load_recommender(champion.model_dir, device=ctx.config.train.device), holdout, k=cfg.k)
        store_evaluation(ctx.engine, ctx.schema, run_id=ctx.run_id, as_of=ctx.as_of, model_version=champion.model_version, role="champion", metrics=results["champion"])
    set_metrics(ctx.engine, ctx.schema, challenger_version, results["challenger"]["all"], len(holdout))
    for role, version in (("challenger", challenger_version), ("champion", champion.model_version if champion else "-"), ("baseline", "most_popular")):
        if role in results:
            log.info("%s", summary_line(role, version, results[role], cfg.k))
    decision = decide(
        cfg=cfg,
        challenger=challenger_version,
        challenger_metrics=results["challenger"]["all"],
        baseline_metrics=results["baseline"]["all"],
        champion=champion,
        champion_metrics=results.get("champion", {}).get("all") if champion else None,
        challenger_data_end=challenger.data_end,
        holdout_users=len(holdout),
        force=force_promote,
        challenger_segments=results["challenger"],
        champion_segments=results.get("champion"),
    )
    log.info("decision: %s (%s)", decision.outcome, decision.reason)
    report = write_run_report(ctx, decision.to_dict(), results)
    log.info("run report: file://%s", report)
    return {
        "decision": decision.to_dict(),
        "metrics": {r: m["all"] for r, m in results.items()},
        "holdout_users": len(holdout),
        "report": str(report),
    }


def write_run_report(ctx: RunContext, decision: Mapping[str, Any], results: Mapping[str, Any]) -> Path:
    """The run's HTML report (metrics, training curve, metric history) next to its artifacts."""
    from recsys_tasks.report import write_report
    from recsys_tasks.sqlfiles import load_sql

    history_file = ctx.run_dir / "train_history.json"
    training = json.loads(history_file.read_text(encoding="utf-8")) if history_file.is_file() else []
    with ctx.engine.connect() as conn:
        rows = conn.execute(
            sa.text(load_sql("select_metric_history", schema=ctx.schema)),
            {"metric": ctx.config.evaluation.primary_metric, "since": (ctx.as_of - timedelta(days=60)).isoformat()},
        ).all()
    return write_report(
        ctx.run_dir / "report.html",
        run_id=ctx.run_id,
        as_of=ctx.as_of.isoformat(),
        decision=decision,
        metrics=results,
        training_history=training,
        metric_history=[dict(r._mapping) for r in rows],
        primary_metric=ctx.config.evaluation.primary_metric,
    )


def promote(ctx: RunContext, decision: Mapping[str, Any]) -> dict[str, Any]:
    """Make the challenger champion (the previous champion is retired)."""
    from recsys_tasks.registry import promote as promote_version

    promote_version(ctx.engine, ctx.schema, decision["challenger"], decision=decision["reason"])
    return {"champion": decision["challenger"], "previous": decision.get("champion")}


def keep_champion(ctx: RunContext, decision: Mapping[str, Any]) -> dict[str, Any]:
    """Record that the challenger was rejected and the champion stays."""
    from recsys_tasks.registry import get_model, set_status

    record = get_model(ctx.engine, ctx.schema, decision["challenger"])
    if record is not None and record.status != "champion":
        set_status(ctx.engine, ctx.schema, decision["challenger"], "rejected", decision=decision["reason"])
    log.info("kept champion %s: %s", decision.get("champion"), decision["reason"])
    return {"champion": decision.get("champion"), "rejected": decision["challenger"]}


# ---------------------------------------------------------------------------------------------- publish


def publish(ctx: RunContext, snapshot: str, *, top_k: int | None = None) -> dict[str, Any]:
    """Publish the champion's top-K for every user with item events in the snapshot, as of ``ctx.as_of``."""
    from recsys_tasks.publish import champion_rows
    from recsys_tasks.publish import publish as write_publication
    from recsys_tasks.recommender import load_recommender
    from recsys_tasks.registry import get_champion
    from recsys_tasks.warehouse import ensure_output_schema, read_snapshot

    ensure_output_schema(ctx.engine, ctx.schema)
    champion = get_champion(ctx.engine, ctx.schema)
    if champion is None:
        raise NothingToPublish(
            "there is no champion model yet (the first challenger did not beat most-popular); nothing was "
            "published. Inspect the evaluations table, or rerun with force_promote=true to accept it."
        )
    events, items = read_snapshot(Path(snapshot))
    recommender = load_recommender(champion.model_dir, device=ctx.config.train.device)
    users = sorted(set(events.loc[events["item_id"].notna(), "user_id"].astype(str)))
    k = min(top_k or ctx.config.publish.top_k, len(recommender.vocab) - 1)
    rows = champion_rows(
        recommender, events, items, users=users, config=ctx.config.publish, k=k, as_of=ctx.as_of,
        run_id=ctx.run_id, model_version=champion.model_version,
    )
    result = write_publication(
        ctx.engine, ctx.schema, rows, as_of=ctx.as_of, run_id=ctx.run_id, model_version=champion.model_version, top_k=k
    )
    return {"as_of": ctx.as_of.isoformat(), "model_version": champion.model_version, "users": result.users, "rows": result.rows}


# ---------------------------------------------------------------------------------------------- rollback


def rollback(
    warehouse_url: str,
    model_version: str,
    *,
    config: RecsysConfig | None = None,
    dag_id: str = "recsys_retrain",
    republish: bool = True,
) -> dict[str, Any]:
    """Make ``model_version`` the champion again and republish the newest publication with it.

    The model's files are checked against the registry's checksum first. The newest publication's
    as-of date is republished from that run's cleaned snapshot, so ``latest_recommendations``
    shows the restored model's recommendations when this returns.
    """
    from recsys_tasks.registry import RegistryError, directory_checksum, get_model
    from recsys_tasks.registry import promote as promote_version
    from recsys_tasks.sqlfiles import load_sql

    cfg = config or RecsysConfig.from_env()
    probe = RunContext(dag_id, "rollback", datetime(2000, 1, 1, tzinfo=timezone.utc), datetime(2000, 1, 2, tzinfo=timezone.utc), warehouse_url, cfg)
    record = get_model(probe.engine, probe.schema, model_version)
    if record is None:
        raise RegistryError(f"model version {model_version!r} is not in {probe.schema}.model_registry; list them with `python -m recsys_tasks.cli models`")
    if not record.model_dir.is_dir() or directory_checksum(record.model_dir) != record.checksum:
        raise RegistryError(f"the files of {model_version} at {record.model_dir} are missing or do not match the registry checksum; it cannot be restored")
    promote_version(probe.engine, probe.schema, model_version, decision=f"rollback to {model_version} by an operator")
    out: dict[str, Any] = {"champion": model_version, "republished": None}
    if republish:
        with probe.engine.connect() as conn:
            latest = conn.execute(sa.text(load_sql("select_latest_publication", schema=probe.schema))).first()
        if latest is None:
            log.info("no publication yet: nothing to republish")
        else:
            as_of = latest.as_of if isinstance(latest.as_of, date) else date.fromisoformat(str(latest.as_of)[:10])
            end = datetime(as_of.year, as_of.month, as_of.day, tzinfo=timezone.utc)
            source = RunContext(dag_id, str(latest.run_id), end - timedelta(days=1), end, warehouse_url, cfg)
            snapshot = source.run_dir / "clean"
            if not snapshot.is_dir():
                raise RegistryError(
                    f"{model_version} is champion again, but the snapshot of the publication of {as_of} ({snapshot}) is gone, "
                    "so its recommendations were not republished; rerun recsys_retrain for that date"
                )
            # The publication keeps the run id of the run whose data it was built from, so a later
            # rollback finds the same snapshot again; the registry records who changed the model.
            out["republished"] = publish(source, str(snapshot), top_k=int(latest.top_k))
            source.dispose()
    probe.dispose()
    return out


# ---------------------------------------------------------------------------------------------- triggers


def _as_datetime(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{value!r} in an asset event's extra is not an ISO timestamp") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


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
        starts = [s for s in (_as_datetime(x.get("interval_start")) for x in extras) if s is not None]
        ends = [e for e in (_as_datetime(x.get("interval_end")) for x in extras) if e is not None]
        if starts and ends:
            return resolve_interval(min(starts), max(ends), length=length)
        days = [str(x["as_of"]) for x in extras if x.get("as_of")]
        if days:
            return resolve_interval(None, None, as_of=max(days), length=length)
        stamps = [t for t in (_as_datetime(e.get("timestamp")) for e in asset_events) if t is not None]
        if stamps:
            return resolve_interval(None, None, fallback=max(stamps), length=length)
    return resolve_interval(data_interval_start, data_interval_end, as_of=as_of, fallback=fallback, length=length)


# ---------------------------------------------------------------------------------------------- refresh


def refresh(ctx: RunContext) -> dict[str, Any]:
    """Re-score users with events in the run's interval into the latest publication (no training)."""
    from recsys_tasks.refresh import refresh_publication

    return refresh_publication(ctx.engine, ctx.config, start=ctx.interval_start, end=ctx.interval_end, run_id=ctx.run_id).to_dict()


# ---------------------------------------------------------------------------------------------- similar items


def publish_similar_items(ctx: RunContext, snapshot: str) -> dict[str, Any]:
    """Publish the champion's top-N similar items of every catalogue item, as of ``ctx.as_of``."""
    import numpy as np

    from recsys_tasks.publish import publish_similar_items as write_similar_items
    from recsys_tasks.publish import similar_item_rows
    from recsys_tasks.recommender import load_recommender
    from recsys_tasks.registry import get_champion
    from recsys_tasks.warehouse import ensure_output_schema, read_snapshot

    ensure_output_schema(ctx.engine, ctx.schema)
    champion = get_champion(ctx.engine, ctx.schema)
    if champion is None:
        raise NothingToPublish("there is no champion model yet, so there are no item vectors to publish similar items from")
    _, items = read_snapshot(Path(snapshot))
    recommender = load_recommender(champion.model_dir, device="cpu")
    vectors = recommender.item_vectors()
    if vectors.ndim != 2 or vectors.shape[1] < 2:
        raise NothingToPublish(f"champion {champion.model_version} is a {recommender.kind} model without item vectors; no similar items")
    # Only items still in the catalogue are listed or suggested.
    eligible = np.zeros(len(recommender.vocab), dtype=bool)
    eligible[recommender.vocab.encode(items["item_id"].astype(str).to_numpy())] = True
    eligible[0] = False
    n = min(ctx.config.publish.similar_items_n, max(int(eligible.sum()) - 1, 1))
    rows = similar_item_rows(vectors, recommender.vocab, n=n, as_of=ctx.as_of, model_version=champion.model_version, eligible=eligible)
    count, listed = write_similar_items(ctx.engine, ctx.schema, rows, as_of=ctx.as_of)
    return {"as_of": ctx.as_of.isoformat(), "model_version": champion.model_version, "items": listed, "rows": count, "n": n}
