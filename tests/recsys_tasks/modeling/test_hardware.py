"""Threads and precision: what a task gets from the machine, whatever its launcher left behind."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from recsys_tasks.modeling import hardware
from recsys_tasks.modeling.hardware import (
    apply_threads,
    autocast_bf16,
    cgroup_cpu_limit,
    default_num_threads,
)


@pytest.mark.parametrize(
    ("content", "expected"),
    [("200000 100000\n", 2), ("150000 100000\n", 2), ("50000 100000\n", 1), ("max 100000\n", None), ("", None)],
)
def test_cgroup_quota_rounds_up_to_whole_cpus(tmp_path, content, expected):
    path = tmp_path / "cpu.max"
    path.write_text(content)
    assert cgroup_cpu_limit(path) == expected


def test_cgroup_quota_missing_file_means_no_limit(tmp_path):
    assert cgroup_cpu_limit(tmp_path / "absent") is None


def test_default_threads_share_the_usable_cpus_among_local_ranks(monkeypatch):
    monkeypatch.setattr(hardware, "usable_cpus", lambda: 16)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert default_num_threads() == 16
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert default_num_threads() == 4
    monkeypatch.setattr(hardware, "usable_cpus", lambda: 512)
    monkeypatch.delenv("LOCAL_WORLD_SIZE")
    assert default_num_threads() == hardware.MAX_THREADS
    monkeypatch.setattr(hardware, "usable_cpus", lambda: 2)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")
    assert default_num_threads() == 1


def test_usable_cpus_follow_the_affinity_mask_and_the_quota(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5, 6, 7})
    monkeypatch.setattr(hardware, "cgroup_cpu_limit", lambda: None)
    assert hardware.usable_cpus() == 8
    monkeypatch.setattr(hardware, "cgroup_cpu_limit", lambda: 2)  # docker --cpus 2 on a bigger host
    assert hardware.usable_cpus() == 2


def test_apply_threads_sets_torch_and_logs(caplog):
    before = torch.get_num_threads()
    try:
        with caplog.at_level("INFO", logger="recsys_tasks.modeling.hardware"):
            assert apply_threads(1, what="unit test") == 1
        assert torch.get_num_threads() == 1
        assert "unit test: 1 intra-op threads" in caplog.text
    finally:
        torch.set_num_threads(before)


def test_apply_threads_overrides_an_inherited_omp_num_threads_of_one():
    """What a worker with OMP_NUM_THREADS=1 in its environment (torchrun, some Celery images) gets."""
    code = (
        "import torch; from recsys_tasks.modeling.hardware import apply_threads, default_num_threads;"
        "before = torch.get_num_threads(); after = apply_threads(None, what='t');"
        "print(before, after, torch.get_num_threads(), default_num_threads())"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("LOCAL_WORLD_SIZE", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    before, after, now, default = map(int, out.stdout.split())
    assert before == 1  # torch obeys the inherited variable ...
    assert after == now == default  # ... until the task sets its own count


def test_training_applies_train_num_threads(tmp_path, tiny_data, tiny_model_cfg, tiny_train_cfg):
    from recsys_tasks.modeling.training import train_model

    data, vocab = tiny_data
    torch.set_num_threads(2)
    try:
        cfg = tiny_train_cfg.model_copy(update={"epochs": 1, "num_threads": 1})
        train_model(train=data, vocab=vocab, model_cfg=tiny_model_cfg, train_cfg=cfg, out_dir=tmp_path / "m")
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(1)


def test_precision_choice(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert not autocast_bf16("fp32", cuda, cpu_auto=True)
    assert autocast_bf16("auto", cuda, cpu_auto=False)
    monkeypatch.setattr(hardware, "cpu_has_bf16", lambda: True)
    assert autocast_bf16("auto", cpu, cpu_auto=True)
    assert not autocast_bf16("auto", cpu, cpu_auto=False)  # measured not to pay: fp32
    assert autocast_bf16("bf16", cpu, cpu_auto=False)
    monkeypatch.setattr(hardware, "cpu_has_bf16", lambda: False)
    assert not autocast_bf16("auto", cpu, cpu_auto=True)
    assert not autocast_bf16("bf16", cpu, cpu_auto=True)  # emulated bf16 is slower than fp32


@pytest.mark.skipif(not hardware.cpu_has_bf16(), reason="this CPU has no native bf16")
def test_bf16_training_on_cpu_learns(tmp_path, tiny_data, tiny_model_cfg, tiny_train_cfg):
    from recsys_tasks.modeling.training import train_model

    data, vocab = tiny_data
    cfg = tiny_train_cfg.model_copy(update={"epochs": 15, "precision": "bf16"})
    result = train_model(train=data, vocab=vocab, model_cfg=tiny_model_cfg, train_cfg=cfg, out_dir=tmp_path / "m")
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert result.metrics["hr@10"] > 0.9
