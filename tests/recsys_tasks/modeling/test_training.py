"""The training loop: it learns, stops early, and resumes after a kill as if never stopped."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import recsys_tasks.modeling.training as train_mod
from recsys_tasks.modeling.training import train_model
from recsys_tasks.serving.recommender import load_recommender


def test_train_writes_a_model_dir_and_learns(tmp_path, tiny_data, tiny_model_cfg, tiny_train_cfg):
    data, vocab = tiny_data
    cfg = tiny_train_cfg.model_copy(update={"epochs": 15})
    result = train_model(
        train=data, vocab=vocab, model_cfg=tiny_model_cfg, train_cfg=cfg, out_dir=tmp_path / "m"
    )
    assert (tmp_path / "m" / "model.safetensors").is_file()
    sidecar = json.loads((tmp_path / "m" / "model.json").read_text())
    assert sidecar["kind"] == "transformer"
    assert sidecar["item_ids"] == vocab.item_ids
    assert sidecar["metrics"] == result.metrics
    assert not (tmp_path / "m" / "checkpoint").exists()
    assert [h["epoch"] for h in result.history] == list(range(1, 16))
    assert result.steps == 15 * 3  # 24 windows (one per user) / batch 8
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    # the toy data is deterministic (item i is followed by i + 1): a trained model finds it
    assert result.metrics["hr@10"] > 0.9


def test_gru_trains_through_the_same_entry_point(tmp_path, tiny_data, tiny_model_cfg, tiny_train_cfg):
    data, vocab = tiny_data
    result = train_model(
        train=data, vocab=vocab, model_cfg=tiny_model_cfg, train_cfg=tiny_train_cfg, out_dir=tmp_path / "g",
        kind="gru",
    )
    assert result.epochs == 3
    assert load_recommender(tmp_path / "g", device="cpu").kind == "gru"


def test_early_stopping_when_validation_never_improves(tmp_path, tiny_data, tiny_model_cfg, tiny_train_cfg):
    data, vocab = tiny_data
    # lr 0: val never improves
    cfg = tiny_train_cfg.model_copy(update={"epochs": 10, "learning_rate": 0.0, "patience": 2})
    result = train_model(
        train=data, vocab=vocab, model_cfg=tiny_model_cfg, train_cfg=cfg, out_dir=tmp_path / "m"
    )
    assert result.epochs == 3  # epoch 1 sets the best, epochs 2 and 3 do not improve


def test_resume_after_a_kill_continues_from_the_last_checkpoint(
    tmp_path, monkeypatch, tiny_data, tiny_model_cfg, tiny_train_cfg
):
    data, vocab = tiny_data
    cfg = tiny_train_cfg.model_copy(update={"epochs": 4})
    model_cfg = tiny_model_cfg.model_copy(update={"dropout": 0.1})  # RNG use must also be reproduced
    straight = train_model(
        train=data, vocab=vocab, model_cfg=model_cfg, train_cfg=cfg, out_dir=tmp_path / "a"
    )

    real_run_epoch = train_mod._run_epoch
    calls = []

    def killed_in_epoch_3(state, plan):
        calls.append(state.epoch)
        if state.epoch == 2:
            raise KeyboardInterrupt("simulated kill")
        return real_run_epoch(state, plan)

    monkeypatch.setattr(train_mod, "_run_epoch", killed_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        train_model(train=data, vocab=vocab, model_cfg=model_cfg, train_cfg=cfg, out_dir=tmp_path / "b")
    state = json.loads((tmp_path / "b" / "checkpoint" / "state.json").read_text())
    assert state["epoch"] == 2 and state["step"] == 2 * 3

    calls.clear()
    def counted(state, plan):
        calls.append(state.epoch)
        return real_run_epoch(state, plan)

    monkeypatch.setattr(train_mod, "_run_epoch", counted)
    resumed = train_model(train=data, vocab=vocab, model_cfg=model_cfg, train_cfg=cfg, out_dir=tmp_path / "b")
    assert calls == [2, 3]  # only the epochs after the checkpoint ran again
    assert resumed.steps == straight.steps == 4 * 3
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3, 4]
    a = load_file(str(tmp_path / "a" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "model.safetensors"))
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)


def test_max_train_seconds_stops_after_the_step_that_used_it_up(
    tmp_path, tiny_data, tiny_model_cfg, tiny_train_cfg
):
    data, vocab = tiny_data
    cfg = tiny_train_cfg.model_copy(update={"epochs": 5, "max_train_seconds": 1e-6})
    result = train_model(
        train=data, vocab=vocab, model_cfg=tiny_model_cfg, train_cfg=cfg, out_dir=tmp_path / "m"
    )
    assert (result.epochs, result.steps) == (1, 1)
    assert load_recommender(tmp_path / "m", device="cpu").kind == "transformer"
    assert not (tmp_path / "m" / "checkpoint").exists()


def test_warmup_and_decay_follow_the_time_budget_when_one_is_set():
    import math

    from recsys_tasks.config import TrainConfig

    cfg = TrainConfig(learning_rate=1e-3, warmup_fraction=0.1)
    total = 200 * 100  # 200 planned epochs of 100 steps: 2,000 warmup steps
    # Without a time budget: the step schedule (linear warmup to the peak, cosine to 0).
    assert train_mod._lr_at(0, total, cfg) == pytest.approx(1e-3 / 2000)
    assert train_mod._lr_at(1999, total, cfg) == pytest.approx(1e-3)
    assert train_mod._lr_at(total - 1, total, cfg) == pytest.approx(0.0, abs=1e-8)
    # 59 steps into a time-capped run: 5% of the time gone is half of the warmup, whatever the steps say.
    assert train_mod._lr_at(59, total, cfg, time_fraction=0.05) == pytest.approx(0.5e-3)
    # Half the time gone: past the warmup, (0.5 - 0.1) / 0.9 of the way down the cosine (the step
    # schedule alone would still be at 60 / 2000 of the warmup).
    expected = 0.5e-3 * (1 + math.cos(math.pi * 0.4 / 0.9))
    assert train_mod._lr_at(59, total, cfg, time_fraction=0.5) == pytest.approx(expected)
    assert train_mod._lr_at(59, total, cfg, time_fraction=1.0) == pytest.approx(0.0, abs=1e-12)
