"""Train: fine-tune the champion (or train from scratch) on events before the cutoff and register the challenger."""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recsys_tasks.config import ModelConfig, RecsysConfig, to_dict
from recsys_tasks.stages.context import RunContext, names_storage_failures
from recsys_tasks.tracking import mirror_training

if TYPE_CHECKING:
    from recsys_tasks.registry import ModelRecord

log = logging.getLogger(__name__)


@names_storage_failures("train")
def run(ctx: RunContext, snapshot: str, *, full_retrain: bool | None = None) -> dict[str, Any]:
    """Fine-tune the champion of the day before (or train from scratch) on events before the cutoff; register it."""
    from recsys_tasks.data.warehouse import ensure_output_schema
    from recsys_tasks.registry import champion_before, get_model, register_model, store_model

    ensure_output_schema(ctx.engine, ctx.schema)
    version = model_version_for(ctx)
    existing = get_model(ctx.engine, ctx.schema, version)
    if existing is not None:
        log.info("challenger %s was already trained and registered by this run; reusing it", version)
        return {"model_version": version, "model_uri": existing.artifact_uri, "parent_version": existing.parent_version, "reused": True}
    # Point in time: the champion of the day before the as-of date (today's for the nightly run, the
    # one of that time for a backfill), so nothing trained after this date's cutoff is used.
    champion = champion_before(ctx.engine, ctx.schema, ctx.as_of)
    retrain = ctx.config.train.full_retrain if full_retrain is None else full_retrain
    kind = ctx.config.model.kind
    warm = champion is not None and not retrain and continues(champion, ctx.config.model)
    init_from = champion.verified_dir(ctx.store) if warm else None
    if init_from is not None:
        log.info("warm start from champion %s", champion.model_version)
    else:
        reason = "full_retrain requested" if retrain else "no champion yet"
        if champion is not None and not retrain:
            reason = f"the champion {champion.model_version} is a {describe(champion.kind, champion.config)} model"
        log.info("training a fresh %s model (%s)", describe(kind, to_dict(ctx.config)), reason)
    config = ctx.config.with_overrides({"train.full_retrain": True}) if retrain else ctx.config
    work_dir = ctx.work_dir("train")
    # With a remote store each epoch's checkpoint is copied there too, so a retry on another worker resumes.
    checkpoints = None if ctx.store.local else ctx.store.uri(ctx.run_dir / "train" / "checkpoints")
    summary = train_from_snapshot(
        config, snapshot=snapshot, cutoff=ctx.cutoff, out_dir=work_dir, init_from=init_from, checkpoints=checkpoints
    )
    model_uri, checksum = store_model(work_dir, ctx.store, version)
    parent = champion.model_version if init_from is not None and champion else None
    register_model(
        ctx.engine,
        ctx.schema,
        model_version=version,
        parent_version=parent,
        kind=kind,
        dag_id=ctx.dag_id,
        run_id=ctx.run_id,
        as_of=ctx.as_of,
        data_start=ctx.history_start,
        data_end=ctx.cutoff,
        artifact_uri=model_uri,
        checksum=checksum,
        config=to_dict(ctx.config),
        metrics={f"validation.{k}": v for k, v in summary["metrics"].items()},
    )
    ctx.store.write_text(ctx.run_dir / "train_history.json", json.dumps(summary["history"], default=float))
    mirror_training(ctx, version, summary["history"])  # MLflow, when configured; never fails the task
    log.info("registered challenger %s (%d epochs, %.1fs)", version, summary["epochs"], summary["seconds"])
    return {
        "model_version": version,
        "model_uri": model_uri,
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
    node_rank: int | None = None,
    checkpoints: str | None = None,
) -> dict[str, Any]:
    """Build the vocabulary and sequences of events before ``cutoff`` in ``snapshot`` and train.

    With ``train.nproc_per_node > 1`` or ``train.nnodes > 1`` this relaunches itself under
    ``torchrun`` (DDP, one process per GPU; the ``train`` command of ``recsys_tasks.cli``) and waits;
    each rank trains on its own slice of the windows and only rank 0 writes. ``node_rank`` is this
    node's place in a multi-node run (``torchrun_command``). With ``checkpoints`` (a URI in the
    artifact store) each epoch's checkpoint is also put there, and training resumes from the newest
    one found there when ``out_dir`` has none. Returns a JSON-ready summary: metrics, history,
    epochs, seconds.
    """
    distributed = config.train.nproc_per_node > 1 or config.train.nnodes > 1
    if distributed and "WORLD_SIZE" not in os.environ:
        args = ["--snapshot", str(snapshot), "--cutoff", cutoff.isoformat(), "--out", str(out_dir)]
        args += ["--init-from", str(init_from)] if init_from is not None else []
        args += ["--checkpoints", checkpoints] if checkpoints is not None else []
        return _under_torchrun(config, args, Path(out_dir), node_rank=node_rank)
    from recsys_tasks.data.event_window import read_event_window
    from recsys_tasks.data.sequences import ItemVocab
    from recsys_tasks.data.snapshot import read_frame
    from recsys_tasks.modeling.artifacts import read_sidecar
    from recsys_tasks.modeling.checkpoint_sync import CheckpointSync
    from recsys_tasks.modeling.text import item_text
    from recsys_tasks.modeling.training import train_model
    from recsys_tasks.storage import ArtifactStore

    store = ArtifactStore.from_config(config)
    # Whole users at a time into flat arrays: memory grows by bytes, not by frames, per event.
    window = read_event_window(
        store.path(snapshot) / "events.parquet", cutoff=cutoff, items_per_user=config.window.holdout_items_per_user,
        chunk_rows=config.window.chunk_rows,
    )
    items = read_frame(store.path(snapshot) / "items.parquet")
    vocab = ItemVocab(read_sidecar(init_from)["item_ids"]) if init_from is not None else ItemVocab()
    added = vocab.extend(sorted(set(items["item_id"].dropna().astype(str))))
    added += vocab.extend(sorted(window.train_item_ids))
    log.info("item vocabulary: %d items (%d new tonight)", len(vocab) - 1, len(added))
    sequences = window.encode(vocab)
    del window
    if sequences.num_interactions == 0:
        raise ValueError(
            f"no item events before the cutoff {cutoff:%Y-%m-%d %H:%M} in the snapshot {snapshot}; nothing to "
            "train on. Check the interval and window.history_days."
        )
    texts = None
    if config.model.use_item_text or config.model.kind == "pretrained":  # a pretrained model's items are their text
        rows = zip(items["item_id"], items["title"], items["category"], strict=True)
        texts = {str(i): item_text(title, category) for i, title, category in rows}
    sync = CheckpointSync(store, store.path(checkpoints)) if checkpoints else None
    if sync is not None:  # every rank (every node has its own out_dir): restores are all-or-nothing renames
        sync.restore(Path(out_dir))
    result = train_model(
        train=sequences,
        vocab=vocab,
        model_cfg=config.model,
        train_cfg=config.train,
        out_dir=Path(out_dir),
        item_text=texts,
        init_from=init_from,
        kind=config.model.kind,
        text_cache_dir=store.cache_dir / "text_cache",
        on_checkpoint=sync.save if sync is not None else None,
    )
    return {"metrics": result.metrics, "history": result.history, "epochs": result.epochs, "seconds": result.seconds}


def _under_torchrun(
    config: RecsysConfig, args: list[str], out_dir: Path, *, node_rank: int | None = None
) -> dict[str, Any]:
    """Run ``recsys_tasks.cli train ARGS`` under ``torchrun``; the summary comes from the model's sidecar."""
    import tempfile

    from recsys_tasks.modeling.artifacts import read_sidecar
    from recsys_tasks.modeling.distributed import run_torchrun, torchrun_command

    out_dir.mkdir(parents=True, exist_ok=True)
    config_file = out_dir.parent / "train_config.json"
    # Replaced whole: on shared storage another node may be writing it while this node's ranks read it.
    with tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", dir=out_dir.parent, suffix=".tmp", delete=False
    ) as tmp:
        tmp.write(json.dumps(to_dict(config)))
    os.replace(tmp.name, config_file)
    program = ["-m", "recsys_tasks.cli", "train", "--config", str(config_file), *args]
    run_torchrun(torchrun_command(config.train, program, out_dir=out_dir, node_rank=node_rank), config.train)
    sidecar = read_sidecar(out_dir)
    history = sidecar.get("history", [])
    return {"metrics": sidecar.get("metrics", {}), "history": history, "epochs": len(history), "seconds": float(sidecar.get("seconds", 0.0))}


def model_version_for(ctx: RunContext) -> str:
    """The challenger version of a run: stable across retries of the run, unique across runs."""
    import hashlib

    digest = hashlib.sha256(f"{ctx.dag_id}/{ctx.run_id}".encode()).hexdigest()[:10]
    return f"m{ctx.as_of:%Y%m%d}-{digest}"


def continues(champion: ModelRecord, model_cfg: ModelConfig) -> bool:
    """Whether tonight's challenger can start from ``champion``: same kind, and for a pretrained model
    the same backbone. Otherwise the challenger trains fresh and evaluation decides between them."""
    if champion.kind != model_cfg.kind:
        return False
    return model_cfg.kind != "pretrained" or champion.config.get("model", {}).get("backbone") == model_cfg.backbone


def describe(kind: str, config: dict[str, Any]) -> str:
    """``transformer``, or ``pretrained (<backbone>)``, for log lines."""
    return f"{kind} ({config.get('model', {}).get('backbone')})" if kind == "pretrained" else kind
