"""Warm start: the champion grown to a larger vocabulary keeps its old scores; new rows come from text."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recsys_tasks.data.sequences import ItemVocab
from recsys_tasks.modeling.artifacts import load_network
from recsys_tasks.modeling.training import TrainError, train_model
from recsys_tasks.modeling.warm_start import grow_model
from recsys_tasks.serving.recommender import load_recommender


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
        train_cfg=tiny_train_cfg.model_copy(update={"fine_tune_epochs": 2}),
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


def test_item_text_initialises_and_grows_the_item_table(tmp_path, tiny_data, tiny_model_cfg, tiny_train_cfg):
    data, vocab = tiny_data
    genres = ("Comedy", "Drama")
    texts = {item: f"Movie number {i} | {genres[i % 2]}" for i, item in enumerate(vocab.item_ids)}
    cfg = tiny_model_cfg.model_copy(update={"use_item_text": True})
    train_model(
        train=data, vocab=vocab, model_cfg=cfg, train_cfg=tiny_train_cfg.model_copy(update={"epochs": 1}),
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
