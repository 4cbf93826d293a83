"""Multi-node DDP on one machine: two "nodes" (one process each, gloo) meet at a c10d rendezvous on
127.0.0.1, each started with the command an operator runs on a node, and train one model."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recsys_tasks.config import ConfigError, RecsysConfig, TrainConfig
from recsys_tasks.data import synth
from recsys_tasks.data.sequences import ItemVocab, build_sequences
from recsys_tasks.data.snapshot import EVENTS_SCHEMA, ITEMS_SCHEMA
from recsys_tasks.modeling.artifacts import SIDECAR_FILE, read_sidecar
from recsys_tasks.modeling.distributed import RendezvousError
from recsys_tasks.serving.recommender import load_recommender
from recsys_tasks.stages.train import train_from_snapshot

CUTOFF = datetime(2026, 1, 14, tzinfo=timezone.utc)
TINY_MODEL = {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "max_len": 16, "use_item_text": False}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_node_config(tmp_path, port: int, **train) -> dict:
    return {
        "artifact_root": str(tmp_path / "artifacts"),
        "model": TINY_MODEL,
        "train": {
            "epochs": 2, "batch_size": 32, "device": "cpu", "nnodes": 2,
            "rdzv_endpoint": f"127.0.0.1:{port}", **train,
        },
    }


def test_several_nodes_need_a_rendezvous_endpoint():
    with pytest.raises(ConfigError, match=r"train\.rdzv_endpoint is required with train\.nnodes=2"):
        RecsysConfig.from_mapping({"train": {"nnodes": 2}})
    with pytest.raises(ConfigError, match=r"train\.rdzv_endpoint='trainer-0': use host:port"):
        TrainConfig(nnodes=2, rdzv_endpoint="trainer-0")
    assert TrainConfig(nnodes=2, rdzv_endpoint="[::1]:29400").rdzv_endpoint == "[::1]:29400"


def test_a_node_whose_peer_never_comes_fails_after_the_join_timeout(tmp_path):
    port = _free_port()
    cfg = RecsysConfig.from_mapping(_two_node_config(tmp_path, port, rdzv_join_timeout_s=10))
    started = time.monotonic()
    with pytest.raises(RendezvousError) as failed:
        train_from_snapshot(
            cfg, snapshot=tmp_path / "clean", cutoff=CUTOFF, out_dir=tmp_path / "train", node_rank=0
        )
    waited = time.monotonic() - started
    assert 10 <= waited < 40, f"failed after {waited:.0f}s, not after the 10s join timeout"
    message = str(failed.value)
    assert f"train.rdzv_endpoint=127.0.0.1:{port}" in message and "train.rdzv_join_timeout_s=10" in message
    assert "all 2 nodes were started" in message and "reachable from every node" in message


def test_two_nodes_train_one_model_on_disjoint_halves(tmp_path):
    events, items = synth.generate(
        n_users=120, n_items=40, start=datetime(2026, 1, 1, tzinfo=timezone.utc),
        end=datetime(2026, 1, 15, tzinfo=timezone.utc), events_per_user_per_day=2.0, seed=3,
    )
    snapshot = tmp_path / "clean"
    snapshot.mkdir()
    for frame, schema, name in ((events, EVENTS_SCHEMA, "events"), (items, ITEMS_SCHEMA, "items")):
        table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
        pq.write_table(table, snapshot / f"{name}.parquet")
    config_file = tmp_path / "recsys.json"
    config_file.write_text(json.dumps(_two_node_config(tmp_path, _free_port(), rdzv_join_timeout_s=60)))
    out = tmp_path / "train"
    # What an operator runs on each machine; here both share the file system, as real nodes must.
    command = [
        sys.executable, "-m", "recsys_tasks.cli", "train", "--config", str(config_file),
        "--snapshot", str(snapshot), "--cutoff", CUTOFF.isoformat(), "--out", str(out),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    nodes = [
        subprocess.Popen(
            [*command, "--node-rank", str(node_rank)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        )
        for node_rank in (0, 1)
    ]
    logs = [node.communicate(timeout=150)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], logs
    assert all("(world 2)" in log for log in logs), "each node's process joined one DDP group of two"
    both = "\n".join(logs)
    assert len(re.findall(rf"wrote {re.escape(str(out))}:", both)) == 1, "rank 0 alone writes the model"
    assert [p.parent for p in tmp_path.rglob(SIDECAR_FILE)] == [out]
    assert not (out / "checkpoint").exists()

    windows = int(re.search(r"(\d+) windows, \d+ items", both)[1])
    shares = re.findall(r"rank (\d) of world 2: epoch (\d+) trained on (\d+) of (\d+) windows", both)
    history = read_sidecar(out)["history"]
    assert len(shares) == 2 * len(history) >= 2
    for epoch in range(1, len(history) + 1):
        seen = {int(r): int(n) for r, e, n, of in shares if int(e) == epoch and int(of) == windows}
        assert set(seen) == {0, 1} and sum(seen.values()) == windows, "the halves cover the epoch once"
        assert abs(seen[0] - seen[1]) <= 1

    rec = load_recommender(out, device="cpu")
    histories = build_sequences(events, ItemVocab(rec.vocab.item_ids))
    _, top, _ = next(rec.recommend(histories, k=5))
    assert top.shape == (len(histories), 5) and (top > 0).all()
