"""Training: windows, checkpoints, resume after a kill, early stopping and warm start."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import recsys_tasks.modeling.training as train_mod
from recsys_tasks.data.sequences import ItemVocab
from recsys_tasks.modeling.artifacts import load_network
from recsys_tasks.modeling.training import TrainError, grow_model, train_model, training_windows
from recsys_tasks.serving.recommender import load_recommender


def test_training_windows_by_hand():
    # user 0 has 5 items: latest window items[2:5], then items[0:3] (targets 1,2 then 3,4 do not overlap)
    windows = training_windows(np.array([5, 1, 2]), max_len=2)
    assert windows.tolist() == [[0, 2, 5], [0, 0, 3], [2, 0, 2]]


def test_train_writes_a_model_dir_and_learns(tmp_path, tiny_data, tiny_model_cfg, tiny_train_cfg):
    data, vocab = tiny_data
    cfg = replace(tiny_train_cfg, epochs=15)
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
    cfg = replace(tiny_train_cfg, epochs=10, learning_rate=0.0, patience=2)  # lr 0: val never improves
    result = train_model(
        train=data, vocab=vocab, model_cfg=tiny_model_cfg, train_cfg=cfg, out_dir=tmp_path / "m"
    )
    assert result.epochs == 3  # epoch 1 sets the best, epochs 2 and 3 do not improve


def test_resume_after_a_kill_continues_from_the_last_checkpoint(
    tmp_path, monkeypatch, tiny_data, tiny_model_cfg, tiny_train_cfg
):
    data, vocab = tiny_data
    cfg = replace(tiny_train_cfg, epochs=4)
    model_cfg = replace(tiny_model_cfg, dropout=0.1)  # RNG use must also be reproduced
    straight = train_model(
        train=data, vocab=vocab, model_cfg=model_cfg, train_cfg=cfg, out_dir=tmp_path / "a"
    )

    real_run_epoch = train_mod._run_epoch
    calls = []

    def killed_in_epoch_3(**kwargs):
        calls.append(kwargs["epoch"])
        if kwargs["epoch"] == 2:
            raise KeyboardInterrupt("simulated kill")
        return real_run_epoch(**kwargs)

    monkeypatch.setattr(train_mod, "_run_epoch", killed_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        train_model(train=data, vocab=vocab, model_cfg=model_cfg, train_cfg=cfg, out_dir=tmp_path / "b")
    state = json.loads((tmp_path / "b" / "checkpoint" / "state.json").read_text())
    assert state["epoch"] == 2 and state["step"] == 2 * 3

    calls.clear()
    def counted(**kwargs):
        calls.append(kwargs["epoch"])
        return real_run_epoch(**kwargs)

    monkeypatch.setattr(train_mod, "_run_epoch", counted)
    resumed = train_model(train=data, vocab=vocab, model_cfg=model_cfg, train_cfg=cfg, out_dir=tmp_path / "b")
    assert calls == [2, 3]  # only the epochs after the checkpoint ran again
    assert resumed.steps == straight.steps == 4 * 3
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3, 4]
    a = load_file(str(tmp_path / "a" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "model.safetensors"))
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)


def test_warm_start_grows_the_vocabulary_and_keeps_old_scores(
    tmp_path, tiny_data, tiny_model_cfg, tiny_train_cfg
):
    data, vocab = tiny_data
    train_model(
        train=data, vocab=vocab, model_cfg=tiny_model_cfg, train_cfg=tiny_train_cfg, out_dir=tmp_path / "c"
    )
    champion = load_recommender(tmp_path / "c", device="cpu")
    grown_vocab = ItemVocab(vocab.item_ids)
    grown_vocab.extend(["new1", "new2"])
    grown, _ = grow_model(tmp_path / "c", grown_vocab)
    old_scores = champion.scores(data.subset(range(5)))
    new_rec = type(champion)(
        kind="transformer", vocab=grown_vocab, popularity=np.ones(len(grown_vocab)), model=grown.eval()
    )
    new_scores = new_rec.scores(data.subset(range(5)))
    assert new_scores.shape == (5, len(vocab) + 2)
    torch.testing.assert_close(new_scores[:, 1 : len(vocab)], old_scores[:, 1:], rtol=0, atol=1e-6)

    result = train_model(
        train=data,
        vocab=grown_vocab,
        model_cfg=tiny_model_cfg,
        train_cfg=replace(tiny_train_cfg, fine_tune_epochs=2),
        out_dir=tmp_path / "d", init_from=tmp_path / "c",
    )
    assert result.epochs == 2
    model, sidecar, loaded_vocab = load_network(tmp_path / "d")
    assert sidecar["parent"] == str(tmp_path / "c")
    assert len(loaded_vocab) == len(vocab) + 2


def test_warm_start_rejects_a_vocabulary_that_reorders_old_items(
    tmp_path, tiny_data, tiny_model_cfg, tiny_train_cfg
):
    data, vocab = tiny_data
    train_model(
        train=data, vocab=vocab, model_cfg=tiny_model_cfg, train_cfg=tiny_train_cfg, out_dir=tmp_path / "c"
    )
    with pytest.raises(TrainError, match="does not extend"):
        grow_model(tmp_path / "c", ItemVocab(list(reversed(vocab.item_ids))))


def test_replay_keeps_every_latest_window_and_a_share_of_older_ones(tiny_model_cfg):
    from recsys_tasks.data.sequences import SequenceData

    items = [np.arange(1, 31), np.arange(1, 4)]
    kinds = [np.ones_like(s) for s in items]
    data = SequenceData(["a", "b"], items, kinds, [np.arange(len(s)) for s in items])
    prepared = train_mod._prepare(data, replace(tiny_model_cfg, max_len=4), seed=0)
    # user a: 29 training items (the 30th is validation) -> windows ending at 29, 25, 21, ..., 5
    assert len(prepared.windows) == 7 + 1
    none = train_mod.replay_windows(prepared, 0.0, seed=0)
    assert none.tolist() == [[0, 24, 29], [1, 0, 2]]
    assert len(train_mod.replay_windows(prepared, 1.0, seed=0)) == 8


def test_item_text_initialises_and_grows_the_item_table(tmp_path, tiny_data, tiny_model_cfg, tiny_train_cfg):
    data, vocab = tiny_data
    genres = ("Comedy", "Drama")
    texts = {item: f"Movie number {i} | {genres[i % 2]}" for i, item in enumerate(vocab.item_ids)}
    cfg = replace(tiny_model_cfg, use_item_text=True)
    train_model(
        train=data, vocab=vocab, model_cfg=cfg, train_cfg=replace(tiny_train_cfg, epochs=1),
        out_dir=tmp_path / "c", item_text=texts,
    )
    assert (tmp_path / "text_cache" / "text_index.json").is_file()  # default cache next to the model dir
    grown_vocab = ItemVocab(vocab.item_ids)
    grown_vocab.extend(["new1"])
    texts["new1"] = "Movie number 99 | Drama"
    grown, _ = grow_model(
        tmp_path / "c", grown_vocab, item_text=texts, text_cache_dir=tmp_path / "text_cache"
    )
    new_row = grown.item_emb.weight[len(vocab)].detach()
    assert torch.isfinite(new_row).all() and new_row.abs().sum() > 0
    old, _, _ = load_network(tmp_path / "c")
    torch.testing.assert_close(grown.item_emb.weight[: len(vocab)], old.item_emb.weight, rtol=0, atol=0)
