"""A training killed after an epoch resumes on another worker from the checkpoint in the object store (moto S3)."""

from __future__ import annotations

from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recsys_tasks.config import RecsysConfig
from recsys_tasks.data import synth
from recsys_tasks.data.snapshot import EVENTS_SCHEMA, ITEMS_SCHEMA
from recsys_tasks.modeling import checkpoint_sync
from recsys_tasks.modeling.artifacts import read_sidecar
from recsys_tasks.stages.train import train_from_snapshot
from recsys_tasks.storage import ArtifactStore

CUTOFF = datetime(2026, 1, 14, tzinfo=timezone.utc)


def _config(s3_root, cache) -> RecsysConfig:
    return RecsysConfig.from_mapping({
        **s3_root,
        "local_cache_dir": str(cache),
        "model": {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "max_len": 16, "use_item_text": False},
        "train": {"epochs": 3, "patience": 10, "batch_size": 32, "device": "cpu"},
    })


def test_a_killed_training_resumes_on_another_worker_from_the_store(tmp_path, s3_root, monkeypatch, caplog):
    events, items = synth.generate(
        n_users=80, n_items=30, start=datetime(2026, 1, 1, tzinfo=timezone.utc), end=datetime(2026, 1, 15, tzinfo=timezone.utc),
        events_per_user_per_day=2.0, seed=4,
    )
    store = ArtifactStore(s3_root["artifact_root"], storage_options=s3_root["artifact_storage_options"], cache_dir=str(tmp_path / "c"))
    snapshot = store.root / "run" / "clean"
    for frame, schema, name in ((events, EVENTS_SCHEMA, "events"), (items, ITEMS_SCHEMA, "items")):
        with store.writing(snapshot / f"{name}.parquet") as tmp:
            pq.write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False), tmp)
    uri, checkpoints = str(snapshot), str(store.root / "run" / "train" / "checkpoints")

    # The uninterrupted run, for reference.
    whole = train_from_snapshot(_config(s3_root, tmp_path / "ref"), snapshot=uri, cutoff=CUTOFF, out_dir=tmp_path / "ref" / "train")

    # Worker A is killed right after its first epoch's checkpoint reached the store.
    save = checkpoint_sync.CheckpointSync.save

    def save_then_die(self, ckpt):
        save(self, ckpt)
        raise RuntimeError("worker A killed")

    monkeypatch.setattr(checkpoint_sync.CheckpointSync, "save", save_then_die)
    with pytest.raises(RuntimeError, match="worker A killed"):
        train_from_snapshot(_config(s3_root, tmp_path / "a"), snapshot=uri, cutoff=CUTOFF, out_dir=tmp_path / "a" / "train",
                            checkpoints=checkpoints)
    monkeypatch.setattr(checkpoint_sync.CheckpointSync, "save", save)
    assert (store.path(checkpoints) / "LATEST").read_text() == "0"

    # The retry runs on worker B, with an empty disk: it resumes after epoch 1 and ends where the whole run did.
    caplog.set_level("INFO")
    resumed = train_from_snapshot(_config(s3_root, tmp_path / "b"), snapshot=uri, cutoff=CUTOFF, out_dir=tmp_path / "b" / "train",
                                  checkpoints=checkpoints)
    assert "resuming from the checkpoint in the artifact store" in caplog.text
    assert "after epoch 1" in caplog.text
    assert resumed["epochs"] == whole["epochs"] == 3
    assert resumed["metrics"] == pytest.approx(whole["metrics"], abs=1e-6)
    assert read_sidecar(tmp_path / "b" / "train")["history"][0]["loss"] == pytest.approx(whole["history"][0]["loss"])
    assert (store.path(checkpoints) / "LATEST").read_text() == "2"
    assert not (store.path(checkpoints) / "epoch-0").exists(), "superseded checkpoints are deleted"
