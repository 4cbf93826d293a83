"""Train: fine-tune the champion (or train from scratch) on events before the cutoff and register the challenger."""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from recsys_tasks.config import RecsysConfig, to_dict
from recsys_tasks.stages.context import RunContext, names_storage_failures

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
        return {"model_version": version, "model_dir": existing.artifact_uri, "parent_version": existing.parent_version, "reused": True}
    # Point in time: the champion of the day before the as-of date (today's for the nightly run, the
    # one of that time for a backfill), so nothing trained after this date's cutoff is used.
    champion = champion_before(ctx.engine, ctx.schema, ctx.as_of)
    retrain = ctx.config.train.full_retrain if full_retrain is None else full_retrain
    init_from = champion.verified_dir() if champion is not None and not retrain and champion.kind == "transformer" else None
    if init_from is not None:
        log.info("warm start from champion %s", champion.model_version)
    else:
        log.info("training from scratch (%s)", "full_retrain requested" if retrain else "no champion yet")
    config = ctx.config.with_overrides({"train.full_retrain": True}) if retrain else ctx.config
    work_dir = ctx.run_dir / "train"
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

    With ``train.nproc_per_node > 1`` this relaunches itself under ``torchrun`` (DDP, one process
    per GPU; the ``train`` command of ``recsys_tasks.cli``) and waits; every rank then runs the same
    steps (inputs are deterministic) and only rank 0 writes. Returns a JSON-ready summary: metrics,
    history, epochs, seconds.
    """
    if config.train.nproc_per_node > 1 and "WORLD_SIZE" not in os.environ:
        args = ["--snapshot", str(snapshot), "--cutoff", cutoff.isoformat(), "--out", str(out_dir)]
        args += ["--init-from", str(init_from)] if init_from is not None else []
        return _under_torchrun(config, args, Path(out_dir))
    from recsys_tasks.data.sequences import ItemVocab, build_sequences, temporal_split
    from recsys_tasks.data.snapshot import read_snapshot
    from recsys_tasks.modeling.artifacts import read_sidecar
    from recsys_tasks.modeling.text import item_text
    from recsys_tasks.modeling.training import train_model

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
    texts = None
    if config.model.use_item_text:
        rows = zip(items["item_id"], items["title"], items["category"], strict=True)
        texts = {str(i): item_text(title, category) for i, title, category in rows}
    result = train_model(
        train=sequences,
        vocab=vocab,
        model_cfg=config.model,
        train_cfg=config.train,
        out_dir=Path(out_dir),
        item_text=texts,
        init_from=init_from,
        text_cache_dir=Path(config.artifact_root).expanduser().resolve() / "text_cache",
    )
    return {"metrics": result.metrics, "history": result.history, "epochs": result.epochs, "seconds": result.seconds}


def _under_torchrun(config: RecsysConfig, args: list[str], out_dir: Path) -> dict[str, Any]:
    """Run ``recsys_tasks.cli train ARGS`` under ``torchrun``; the summary comes from the model's sidecar."""
    import subprocess
    import sys

    from recsys_tasks.modeling.artifacts import read_sidecar

    out_dir.mkdir(parents=True, exist_ok=True)
    config_file = out_dir.parent / "train_config.json"
    config_file.write_text(json.dumps(to_dict(config)), encoding="utf-8")
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={config.train.nproc_per_node}",
        "-m", "recsys_tasks.cli", "train", "--config", str(config_file), *args,
    ]
    log.info("training with torchrun: %s", " ".join(command))
    proc = subprocess.run(command, check=False)
    if proc.returncode != 0:
        raise RuntimeError(
            f"torchrun training failed with exit code {proc.returncode} (its log is above); with "
            f"train.nproc_per_node={config.train.nproc_per_node} every process needs its own GPU (or CPU with gloo)"
        )
    sidecar = read_sidecar(out_dir)
    history = sidecar.get("history", [])
    return {"metrics": sidecar.get("metrics", {}), "history": history, "epochs": len(history), "seconds": float(sidecar.get("seconds", 0.0))}


def model_version_for(ctx: RunContext) -> str:
    """The challenger version of a run: stable across retries of the run, unique across runs."""
    import hashlib

    digest = hashlib.sha256(f"{ctx.dag_id}/{ctx.run_id}".encode()).hexdigest()[:10]
    return f"m{ctx.as_of:%Y%m%d}-{digest}"
