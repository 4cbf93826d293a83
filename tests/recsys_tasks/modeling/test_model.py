"""The sequence model: shapes, causality, padding, and that it can learn."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recsys_tasks.config import ModelConfig
from recsys_tasks.modeling.baselines import GRURecModel
from recsys_tasks.modeling.model import SeqRecModel, make_batch, time_gap_buckets

V = 20  # embedding rows: padding + 19 items


def _models(cfg: ModelConfig):
    torch.manual_seed(0)
    return [
        SeqRecModel(cfg, V).eval(),
        SeqRecModel(cfg.model_copy(update={"architecture": "llama"}), V).eval(),
        GRURecModel(cfg, V).eval(),
    ]


@pytest.mark.parametrize("index", [0, 1, 2], ids=["gpt2", "llama", "gru"])
def test_shapes_and_padding_never_predicted(tiny_model_cfg, index):
    model = _models(tiny_model_cfg)[index]
    items = torch.tensor([[1, 2, 3, 0], [4, 5, 6, 7]])
    logits, loss = model(items, event_types=(items > 0).long(), time_gaps=(items > 0).long())
    assert logits.shape == (2, 4, V)
    assert loss is None
    assert torch.isneginf(logits[..., 0]).all()
    targets = torch.tensor([[2, 3, 0, 0], [5, 6, 7, 8]])
    _, loss = model(items, targets=targets)
    assert loss.ndim == 0 and torch.isfinite(loss)


@pytest.mark.parametrize("index", [0, 1, 2], ids=["gpt2", "llama", "gru"])
def test_changing_a_later_item_leaves_earlier_logits_unchanged(tiny_model_cfg, index):
    model = _models(tiny_model_cfg)[index]
    a = torch.tensor([[3, 4, 5, 6, 7]])
    b = a.clone()
    b[0, 3] = 12
    with torch.no_grad():
        la, _ = model(a)
        lb, _ = model(b)
    torch.testing.assert_close(la[0, :3, 1:], lb[0, :3, 1:], rtol=0, atol=1e-6)
    assert not torch.allclose(la[0, 3:, 1:], lb[0, 3:, 1:])  # the change is visible from its position on


@pytest.mark.parametrize("index", [0, 1, 2], ids=["gpt2", "llama", "gru"])
def test_padding_has_no_effect(tiny_model_cfg, index):
    model = _models(tiny_model_cfg)[index]
    short = torch.tensor([[3, 4, 5]])
    padded = torch.tensor([[3, 4, 5, 0, 0, 0], [9, 8, 7, 6, 5, 4]])  # batched with a longer sequence
    with torch.no_grad():
        ls, _ = model(short, torch.ones_like(short), torch.ones_like(short))
        lp, _ = model(padded, (padded > 0).long(), (padded > 0).long())
    torch.testing.assert_close(ls[0, :, 1:], lp[0, :3, 1:], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("architecture", ["gpt2", "llama"])
def test_overfits_one_small_batch(tiny_model_cfg, architecture):
    torch.manual_seed(0)
    cfg = tiny_model_cfg.model_copy(update={"architecture": architecture, "hidden_size": 32})
    model = SeqRecModel(cfg, V)
    items = torch.tensor([[1, 5, 9, 13, 17], [2, 4, 6, 0, 0]])
    targets = torch.tensor([[5, 9, 13, 17, 3], [4, 6, 8, 0, 0]])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(150):
        _, loss = model(items, targets=targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05
    model.eval()
    logits, _ = model(items)
    predicted = logits.argmax(-1)
    mask = targets != 0
    assert torch.equal(predicted[mask], targets[mask])


def test_sampled_softmax_is_used_above_the_threshold(tiny_model_cfg):
    torch.manual_seed(0)
    cfg = tiny_model_cfg.model_copy(update={"sampled_softmax_above": 10, "num_negatives": 8})
    model = SeqRecModel(cfg, V)
    model.set_popularity(np.arange(V, dtype=np.float32))
    items = torch.tensor([[1, 2, 3]])
    logits, loss = model(items, targets=torch.tensor([[2, 3, 0]]))
    assert logits is None
    assert torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    assert model.item_emb.weight.grad is not None


def test_time_gap_buckets_by_hand():
    # gaps in minutes: 0 (first), 0, 1, 3, 1e6 -> log2(1 + gap) floors: 0, 0, 1, 2, 19 -> clipped to 15
    ts = np.array([0, 0, 60, 240, 240 + 60_000_000])
    assert time_gap_buckets(ts, 16).tolist() == [1, 1, 2, 3, 16]


def test_make_batch_keeps_the_latest_items_right_padded():
    items, types, gaps, lengths = make_batch(
        [np.array([1, 2, 3, 4]), np.array([7])],
        [np.array([1, 1, 2, 2]), np.array([3])],
        [np.array([0, 60, 120, 180]), np.array([5])],
        max_len=3,
        num_gap_buckets=4,
    )
    assert items.tolist() == [[2, 3, 4], [7, 0, 0]]
    assert types.tolist() == [[1, 2, 2], [3, 0, 0]]
    assert gaps.tolist() == [[2, 2, 2], [1, 0, 0]]
    assert lengths.tolist() == [3, 1]


def test_seen_so_far_by_hand():
    from recsys_tasks.modeling.model import seen_so_far

    seen = seen_so_far(torch.tensor([[2, 3, 2, 0]]), 5)
    assert seen[0].tolist() == [
        [0, 0, 1, 0, 0],
        [0, 0, 1, 1, 0],
        [0, 0, 1, 1, 0],
        [0, 0, 1, 1, 0],  # padding adds nothing
    ]


def test_repeat_bias_shifts_exactly_the_items_in_the_history(tiny_model_cfg):
    torch.manual_seed(0)
    model = SeqRecModel(tiny_model_cfg, V).eval()
    items = torch.tensor([[3, 4, 5, 0]])
    lengths = torch.tensor([3])
    with torch.no_grad():
        before = model.next_item_scores(items, None, None, lengths)
        model.repeat_bias.fill_(-2.5)
        after = model.next_item_scores(items, None, None, lengths)
        full, _ = model(items)
    delta = (after - before)[0, 1:]
    expected = torch.zeros(V - 1)
    expected[[2, 3, 4]] = -2.5  # items 3, 4, 5 (column i + 1)
    torch.testing.assert_close(delta, expected)
    torch.testing.assert_close(full[0, 2, 1:], after[0, 1:])  # the same scores through forward()
