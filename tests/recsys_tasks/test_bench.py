"""The benchmark CLI end to end on a tiny generated RecBole file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from recsys_tasks.bench import main, read_interactions, to_sequences

KEYS = {"hr@10", "ndcg@10", "mrr@10", "sampled_hr@10", "sampled_ndcg@10", "epochs", "wall_time_s",
        "train_seqs_per_s", "peak_rss_mb", "seed"}


def _write_inter(path: Path, users: int = 15, items: int = 150) -> Path:
    rng = np.random.default_rng(0)
    lines = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    for u in range(users):
        start = int(rng.integers(0, items))
        for t in range(int(rng.integers(4, 9))):
            lines.append(f"{u}\t{(start + t) % items}\t4\t{1000 + 10 * t}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_reads_recbole_and_sasrec_in_time_order(tmp_path):
    inter = tmp_path / "x.inter"
    inter.write_text("user_id:token\titem_id:token\ttimestamp:float\nu1\tb\t20\nu1\ta\t10\nu2\tb\t5\n")
    data, vocab = to_sequences(read_interactions(inter, "recbole"))
    assert data.user_ids == ["u1", "u2"]
    assert [vocab.decode(s) for s in data.items] == [["a", "b"], ["b"]]
    txt = tmp_path / "x.txt"
    txt.write_text("1 5\n1 7\n2 5\n")
    data, vocab = to_sequences(read_interactions(txt, "sasrec"))
    assert [vocab.decode(s) for s in data.items] == [["5", "7"], ["5"]]


@pytest.mark.parametrize("model", ["popularity", "transformer"])
def test_cli_prints_the_json_keys(tmp_path, capsys, model):
    inter = _write_inter(tmp_path / "tiny.inter")
    args = ["--data", str(inter), "--model", model, "--epochs", "2", "--hidden", "16", "--layers", "1",
            "--max-len", "8", "--threads", "1"]
    assert main(args) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    report = json.loads(last)
    assert KEYS <= set(report)
    assert report["users"] == 15
    assert 0.0 <= report["ndcg@10"] <= report["hr@10"] <= 1.0
    assert report["sampled_hr@10"] >= report["hr@10"]  # 101 candidates are easier than the full catalogue
    if model == "transformer":
        assert report["epochs"] == 2


def test_module_runs_as_a_script(tmp_path):
    inter = _write_inter(tmp_path / "tiny.inter")
    out = subprocess.run(
        [sys.executable, "-m", "recsys_tasks.bench", "--data", str(inter), "--model", "popularity"],
        capture_output=True, text=True, check=True, timeout=120,
    )
    assert KEYS <= set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_test_every_epoch_adds_the_curve_without_changing_the_run(tmp_path, capsys):
    inter = _write_inter(tmp_path / "tiny.inter")
    base = ["--data", str(inter), "--model", "transformer", "--epochs", "3", "--patience", "3",
            "--hidden", "16", "--layers", "1", "--max-len", "8", "--threads", "1"]
    assert main(base) == 0
    plain = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "test_curve" not in plain and "time_to_ndcg" not in plain  # default output unchanged

    assert main([*base, "--test-every-epoch", "--target-ndcg", "0"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    curve = report["test_curve"]
    assert [p["epoch"] for p in curve] == [1, 2, 3]
    assert all(set(p) == {"epoch", "wall_time_s", "ndcg@10", "hr@10"} for p in curve)
    assert all(0.0 <= p["ndcg@10"] <= p["hr@10"] <= 1.0 for p in curve)
    assert [p["wall_time_s"] for p in curve] == sorted(p["wall_time_s"] for p in curve)
    assert report["time_to_ndcg"] == curve[0]["wall_time_s"] and report["epochs_to_ndcg"] == 1
    # the extra evaluations leave training alone: same validation score and final test figures
    assert report["val_ndcg@10"] == plain["val_ndcg@10"]
    assert report["ndcg@10"] == plain["ndcg@10"] and report["hr@10"] == plain["hr@10"]

    assert main([*base, "--target-ndcg", "1.5"]) == 0  # implies --test-every-epoch; never reached
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(report["test_curve"]) == 3
    assert report["time_to_ndcg"] is None and report["epochs_to_ndcg"] is None
