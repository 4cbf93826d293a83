"""The sampled softmax and the cost-aware choice between it and the full softmax."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from recsys_tasks.config import ConfigError, ModelConfig
from recsys_tasks.modeling.losses import (
    choose_loss,
    inclusion_log_prob,
    sampled_softmax_loss,
    step_cost_ratio,
)
from recsys_tasks.modeling.model import SeqRecModel


def test_logq_correction_by_hand():
    # popularity counts (padding, 3, 0) -> smoothed q = (0, 4, 1) / 5. Two targets (items 1 and 2), no
    # drawn negatives: M = 2 draws, P(included) = 1 - (1 - q)^2 = 0.96 and 0.36.
    popularity = torch.tensor([0.0, 3.0, 0.0])
    assert torch.allclose(inclusion_log_prob(popularity, 2)[1:], torch.log(torch.tensor([0.96, 0.36])))
    h = torch.zeros(2, 1, 4)  # equal raw scores: only the correction separates the items
    loss = sampled_softmax_loss(h, torch.tensor([[1], [2]]), torch.randn(3, 4), popularity, num_negatives=0)
    # corrected logits -log(0.96), -log(0.36): the popular item is pushed down, the rare one up
    popular_target = -math.log((1 / 0.96) / (1 / 0.96 + 1 / 0.36))
    rare_target = -math.log((1 / 0.36) / (1 / 0.96 + 1 / 0.36))
    assert popular_target > math.log(2) > rare_target  # the sign of the correction
    assert loss.item() == pytest.approx((popular_target + rare_target) / 2, rel=1e-5)


def test_sampled_equals_full_softmax_when_every_item_is_a_candidate(tiny_model_cfg):
    # uniform popularity -> equal corrections that cancel; the batch's targets cover the catalogue
    torch.manual_seed(0)
    model = SeqRecModel(tiny_model_cfg, 6).eval()
    with torch.no_grad():
        model.repeat_bias.fill_(0.7)  # the repeat bias is part of both losses
    model.set_popularity(np.ones(6, dtype=np.float32))
    items = torch.tensor([[1, 2, 3, 1], [4, 5, 2, 0]])
    targets = torch.tensor([[2, 3, 1, 4], [5, 2, 0, 0]])
    _, full = model(items, targets=targets)
    model.sampled_softmax = True
    _, sampled = model(items, targets=targets)
    assert model.cfg.num_negatives > 0  # drawn negatives duplicate candidates and are merged
    assert sampled.item() == pytest.approx(full.item(), rel=1e-5)


def test_sampled_loss_is_finite_and_overfits_a_toy_batch(tiny_model_cfg):
    torch.manual_seed(0)
    cfg = tiny_model_cfg.model_copy(update={"loss": "sampled", "num_negatives": 8})
    model = SeqRecModel(cfg, 40)
    assert model.sampled_softmax
    model.set_popularity(np.arange(40, dtype=np.float32))
    items = torch.tensor([[1, 5, 9, 13, 17], [2, 6, 10, 14, 18]])
    targets = torch.tensor([[5, 9, 13, 17, 21], [6, 10, 14, 18, 22]])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(120):
        logits, loss = model(items, targets=targets)
        assert logits is None and torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-10:]) < 0.2 * np.mean(losses[:10])
    # and the full-catalogue ranking learned it too, not only the sampled one
    model.eval()
    full_logits, _ = model(items)
    assert (full_logits.argmax(-1) == targets).float().mean() > 0.8


def test_cost_ratio_by_hand():
    cfg = ModelConfig(hidden_size=64, num_layers=2, max_len=50, num_negatives=1024)
    body = 2 * (24 * 64 * 64 + 4 * 50 * 64)  # 222,208 FLOPs a position
    # 25,000 rows, 1,000 positions a batch: 2,024 shared candidates
    expected = (body + 2 * 64 * 25_000) / (body + 2 * 64 * 2_024 / 1_000)
    assert step_cost_ratio(cfg, 25_000, 1_000) == pytest.approx(expected)


def test_auto_keeps_the_full_softmax_on_a_small_catalogue_and_samples_on_a_large_one():
    cfg = ModelConfig()
    assert choose_loss(cfg, 1_683, positions=128 * 49) == "full"  # MovieLens-100K
    assert choose_loss(cfg, 23_446, positions=128 * 7) == "sampled"  # the sparse shop
    assert choose_loss(cfg.model_copy(update={"loss": "full"}), 1_000_000, positions=128) == "full"
    assert choose_loss(cfg.model_copy(update={"loss": "sampled"}), 100, positions=128) == "sampled"
    # the old fixed threshold still works as an override
    legacy = cfg.model_copy(update={"sampled_softmax_above": 50_000})
    assert choose_loss(legacy, 23_446, positions=128) == "full"


def test_unknown_loss_is_a_config_error():
    with pytest.raises(ConfigError):
        ModelConfig(loss="bpr")


def test_training_picks_the_loss_from_the_cost(tmp_path, tiny_data, tiny_model_cfg, tiny_train_cfg, monkeypatch):
    from recsys_tasks.modeling import training
    from recsys_tasks.modeling.training import train_model

    data, vocab = tiny_data
    chosen = []
    original = training.choose_loss
    monkeypatch.setattr(training, "choose_loss", lambda *a, **k: chosen.append(original(*a, **k)) or "sampled")
    cfg = tiny_train_cfg.model_copy(update={"epochs": 2})
    result = train_model(train=data, vocab=vocab, model_cfg=tiny_model_cfg, train_cfg=cfg, out_dir=tmp_path / "m")
    assert chosen == ["full"]  # 12 items: the full softmax is cheap
    assert all(math.isfinite(h["loss"]) for h in result.history)  # and the forced sampled loss trains
