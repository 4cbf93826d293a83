"""TrainState: saved and restored as one unit, ignored when written for other inputs, reseeded per epoch."""

from __future__ import annotations

import json

import numpy as np
import torch

from recsys_tasks.data.sequences import ItemVocab
from recsys_tasks.modeling.checkpoint import TrainState, fingerprint
from recsys_tasks.modeling.model import SeqRecModel


def _state(cfg, *, init_seed: int, fp: str = "f") -> TrainState:
    torch.manual_seed(init_seed)
    model = SeqRecModel(cfg, 10)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    return TrainState(model=model, optimizer=optimizer, fingerprint=fp, seed=3)


def _one_step(state: TrainState) -> None:
    _, loss = state.model(torch.tensor([[1, 2, 3]]), targets=torch.tensor([[2, 3, 4]]))
    state.optimizer.zero_grad()
    loss.backward()
    state.optimizer.step()
    state.step += 1


def test_a_saved_state_loads_back_whole(tmp_path, tiny_model_cfg):
    a = _state(tiny_model_cfg, init_seed=0)
    _one_step(a)
    a.end_epoch({"loss": 2.0}, score=0.5)
    _one_step(a)
    a.end_epoch({"loss": 1.0}, score=0.25)  # worse: the best weights stay those of epoch 1
    a.seconds = 12.5
    a.save(tmp_path / "ckpt")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["state.json", "tensors.safetensors"]

    b = _state(tiny_model_cfg, init_seed=1)  # other weights, empty optimizer
    assert b.load(tmp_path / "ckpt")
    for name, value in a.model.state_dict().items():
        torch.testing.assert_close(b.model.state_dict()[name], value, rtol=0, atol=0, msg=name)
    for name, value in a.best_weights.items():
        torch.testing.assert_close(b.best_weights[name], value, rtol=0, atol=0, msg=name)
    assert not all(torch.equal(a.best_weights[n], v) for n, v in a.model.state_dict().items())
    sa_, sb = a.optimizer.state_dict(), b.optimizer.state_dict()
    assert sa_["param_groups"] == sb["param_groups"]
    assert sa_["state"].keys() == sb["state"].keys()
    for idx, slot in sa_["state"].items():
        for name, value in slot.items():
            torch.testing.assert_close(sb["state"][idx][name], value, rtol=0, atol=0)
    assert (b.epoch, b.step, b.best_metric, b.best_epoch, b.bad_epochs, b.seconds) == (2, 2, 0.5, 1, 1, 12.5)
    assert b.history == [{"epoch": 1, "loss": 2.0}, {"epoch": 2, "loss": 1.0}]
    # and the restored optimizer steps exactly like the original
    _one_step(a)
    _one_step(b)
    for name, value in a.model.state_dict().items():
        torch.testing.assert_close(b.model.state_dict()[name], value, rtol=0, atol=0, msg=name)


def test_a_state_written_for_other_inputs_is_ignored(tmp_path, tiny_model_cfg):
    a = _state(tiny_model_cfg, init_seed=0)
    a.end_epoch({"loss": 1.0}, score=0.5)
    a.save(tmp_path / "ckpt")
    b = _state(tiny_model_cfg, init_seed=1, fp="other")
    before = {k: v.clone() for k, v in b.model.state_dict().items()}
    assert not b.load(tmp_path / "ckpt")
    assert b.epoch == 0 and b.history == []
    for name, value in before.items():
        torch.testing.assert_close(b.model.state_dict()[name], value, rtol=0, atol=0)
    assert not _state(tiny_model_cfg, init_seed=1).load(tmp_path / "missing")


def test_saving_again_replaces_the_directory_whole(tmp_path, tiny_model_cfg):
    state = _state(tiny_model_cfg, init_seed=0)
    state.end_epoch({"loss": 1.0}, score=0.5)
    state.save(tmp_path / "ckpt")
    state.end_epoch({"loss": 0.5}, score=0.6)
    state.save(tmp_path / "ckpt")
    assert json.loads((tmp_path / "ckpt" / "state.json").read_text())["epoch"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no .tmp or .old left behind


def test_reseed_depends_on_the_epoch_alone(tiny_model_cfg):
    draws = []
    for noise in (0, 5):
        state = _state(tiny_model_cfg, init_seed=noise)
        state.epoch = 2
        torch.rand(noise)  # whatever ran before must not matter
        order = state.reseed().permutation(10)
        draws.append((order.tolist(), torch.rand(3).tolist(), np.random.rand()))
    assert draws[0] == draws[1]
    state.epoch = 3
    assert state.reseed().permutation(10).tolist() != draws[0][0]


def test_fingerprint_changes_with_each_input(tiny_model_cfg, tiny_train_cfg):
    vocab = ItemVocab(["a", "b"])
    args = ("transformer", tiny_model_cfg, tiny_train_cfg, vocab, 10, None)
    base = fingerprint(*args)
    assert base == fingerprint(*args)
    grown = ItemVocab(["a", "b"])
    grown.extend(["c"])
    changed = [
        ("gru", *args[1:]),
        (args[0], tiny_model_cfg.model_copy(update={"hidden_size": 32}), *args[2:]),
        (*args[:2], tiny_train_cfg.model_copy(update={"seed": 1}), *args[3:]),
        (*args[:3], grown, *args[4:]),
        (*args[:4], 11, None),
        (*args[:5], "/models/champion"),
    ]
    assert len({base, *(fingerprint(*c) for c in changed)}) == 1 + len(changed)
