"""Loading model directories and streaming top-K recommendations."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from recsys_tasks.data.sequences import ItemVocab, SequenceData
from recsys_tasks.modeling.artifacts import ModelDirError, save_model
from recsys_tasks.modeling.model import SeqRecModel
from recsys_tasks.serving.recommender import (
    PopularityRecommender,
    Recommender,
    load_recommender,
    save_popularity,
)


def _with_empty_user(data: SequenceData) -> SequenceData:
    empty = np.zeros(0, dtype=np.int64)
    return SequenceData(
        data.user_ids + ["nobody"],
        data.items + [empty],
        data.event_types + [empty],
        data.timestamps + [empty],
    )


def test_checkpoint_round_trip_gives_identical_scores(tmp_path, tiny_data, tiny_model_cfg):
    data, vocab = tiny_data
    torch.manual_seed(0)
    model = SeqRecModel(tiny_model_cfg, len(vocab)).eval()
    model.set_popularity(np.arange(len(vocab), dtype=np.float32))
    in_memory = Recommender(kind="transformer", vocab=vocab, popularity=np.arange(len(vocab)), model=model)
    before = in_memory.scores(data)
    save_model(tmp_path / "m", kind="transformer", vocab=vocab, popularity=np.arange(len(vocab)), model=model,
               model_cfg=tiny_model_cfg, extra={"epoch": 3})
    loaded = load_recommender(tmp_path / "m", device="cpu")
    assert loaded.kind == "transformer" and loaded.vocab.item_ids == vocab.item_ids
    assert loaded.sidecar["epoch"] == 3
    torch.testing.assert_close(loaded.scores(data), before, rtol=0, atol=0)
    assert loaded.item_vectors().shape == (len(vocab), tiny_model_cfg.hidden_size)


def test_recommend_never_returns_padding_or_excluded_items(tmp_path, tiny_data, tiny_model_cfg):
    data, vocab = tiny_data
    model = SeqRecModel(tiny_model_cfg, len(vocab)).eval()
    save_model(tmp_path / "m", kind="transformer", vocab=vocab, popularity=np.ones(len(vocab)), model=model,
               model_cfg=tiny_model_cfg)
    rec = load_recommender(tmp_path / "m", device="cpu")
    histories = _with_empty_user(data)
    exclude = [set(s.tolist()) for s in histories.items]
    chunks = list(rec.recommend(histories, k=3, exclude=exclude, batch_users=7))
    assert [offset for offset, _, _ in chunks] == [0, 7, 14, 21]
    top = np.concatenate([idx for _, idx, _ in chunks])
    scores = np.concatenate([s for _, _, s in chunks])
    assert top.shape == (len(histories), 3) and top.dtype == np.int64 and scores.dtype == np.float32
    for row, excluded in zip(top, exclude, strict=True):
        assert 0 not in row
        assert not set(row.tolist()) & excluded
        assert len(set(row.tolist())) == 3
    assert np.all(np.diff(scores, axis=1) <= 0)  # best first


def test_empty_history_gets_the_popularity_ranking(tmp_path, tiny_data, tiny_model_cfg):
    data, vocab = tiny_data
    model = SeqRecModel(tiny_model_cfg, len(vocab)).eval()
    counts = np.zeros(len(vocab))
    counts[[5, 2, 9]] = [10, 30, 20]  # most popular: 2, then 9, then 5
    model.set_popularity(counts)
    save_model(
        tmp_path / "m", kind="transformer", vocab=vocab, popularity=counts, model=model,
        model_cfg=tiny_model_cfg,
    )
    rec = load_recommender(tmp_path / "m", device="cpu")
    (_, top, _), = rec.recommend(_with_empty_user(data).subset([len(data)]), k=3)
    assert top.tolist() == [[2, 9, 5]]


def test_popularity_model_round_trip(tmp_path):
    vocab = ItemVocab(["a", "b", "c", "d"])
    ts = np.arange(4, dtype=np.int64)
    # item counts: a (1) x3, b (2) x1, c (3) x2; the last two events are the recent ones
    train = SequenceData(
        ["u1", "u2"],
        [np.array([1, 1, 3]), np.array([1, 2, 3])[:3]],
        [np.ones(3, dtype=np.int64)] * 2,
        [ts[:3], ts[1:4]],
    )
    rec = PopularityRecommender.fit(train, vocab)
    assert rec.popularity_counts.tolist() == [0, 3, 1, 2, 0]
    save_popularity(tmp_path / "p", train=train, vocab=vocab)
    loaded = load_recommender(tmp_path / "p", device="cpu")
    assert loaded.kind == "popularity"
    (_, top, _), = loaded.recommend(train, k=2, exclude=[{1}, set()])
    assert top.tolist() == [[3, 2], [1, 3]]
    recent = PopularityRecommender.fit(train, vocab, recent_seconds=0)  # only events at the newest second (3)
    assert recent.popularity_counts.tolist() == [0, 0, 0, 1, 0]


def test_k_larger_than_the_catalogue_is_an_error(tiny_data):
    data, vocab = tiny_data
    rec = PopularityRecommender.fit(data, vocab)
    with pytest.raises(ValueError, match="catalogue size"):
        next(rec.recommend(data, k=len(vocab)))


def test_missing_model_dir_says_what_to_do(tmp_path):
    with pytest.raises(ModelDirError, match="does not exist"):
        load_recommender(tmp_path / "nothing")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "model.json").write_text(json.dumps({"kind": "svd"}))
    with pytest.raises(ModelDirError, match="unknown kind"):
        load_recommender(tmp_path / "bad")


@pytest.mark.parametrize("kind", ["transformer", "gru", "popularity"])
def test_scoring_the_catalogue_in_slices_gives_the_full_top_k(tiny_data, tiny_model_cfg, kind):
    """The running top-k over item slices equals ranking the full (B, V) score matrix."""
    from recsys_tasks.modeling.artifacts import build_model
    from recsys_tasks.serving.recommender import Recommender

    data, vocab = tiny_data
    torch.manual_seed(0)
    cfg = tiny_model_cfg.model_copy(update={"repeat_bias": True}) if kind == "transformer" else tiny_model_cfg
    model = None if kind == "popularity" else build_model(kind, cfg, len(vocab)).eval()
    if model is not None and model.repeat_bias is not None:
        with torch.no_grad():
            model.repeat_bias.fill_(-0.7)  # non-zero, so the per-slice repeat mask matters
    rec = Recommender(kind=kind, vocab=vocab, popularity=np.arange(len(vocab), dtype=np.float32), model=model)
    exclude = [{1, 5} if u % 2 else set() for u in range(len(data))]
    full = list(rec.recommend(data, k=5, exclude=exclude, batch_users=7, item_chunk=len(vocab)))
    for item_chunk in (1, 3, 4):
        sliced = list(rec.recommend(data, k=5, exclude=exclude, batch_users=7, item_chunk=item_chunk))
        for (o1, i1, s1), (o2, i2, s2) in zip(full, sliced, strict=True):
            assert o1 == o2
            np.testing.assert_allclose(s1, s2, rtol=1e-5, atol=1e-6)
            assert (i1 == i2).all()
    excluded_rows = [row for offset, top, _ in full for r, row in enumerate(top) if (offset + r) % 2]
    assert excluded_rows and all(not ({1, 5} & set(row.tolist())) for row in excluded_rows)
