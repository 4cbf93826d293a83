"""The item text encoder: offline loading, 384-d vectors, and the hash-keyed cache."""

from __future__ import annotations

import socket

import numpy as np
import pytest

import recsys_tasks.modeling.text as text_mod
from recsys_tasks.modeling.text import encode_item_texts, fit_text_projection, item_text, pca_projection


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network disabled in tests")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


def test_encodes_offline_to_384_unit_vectors_and_caches(tmp_path, monkeypatch, no_network):
    texts = {
        "a": item_text("Toy Story", "Animation"),
        "b": item_text("Heat", "Crime"),
        "c": item_text("Toy Story 2", "Animation"),
    }
    vectors = encode_item_texts(texts, cache_dir=tmp_path)
    assert set(vectors) == {"a", "b", "c"}
    assert vectors["a"].shape == (384,) and vectors["a"].dtype == np.float32
    assert np.linalg.norm(vectors["a"]) == pytest.approx(1.0, abs=1e-5)
    assert vectors["a"] @ vectors["c"] > vectors["a"] @ vectors["b"]  # sequels are closer than strangers

    encoded = []
    real_load = text_mod._load_encoder

    def counting_load(encoder):
        model = real_load(encoder)
        original = model.encode
        model.encode = lambda sentences, **kw: encoded.extend(sentences) or original(sentences, **kw)
        return model

    monkeypatch.setattr(text_mod, "_load_encoder", counting_load)
    changed = {**texts, "c": item_text("Toy Story 2", "Comedy"), "d": "x | y"}
    again = encode_item_texts(changed, cache_dir=tmp_path)
    assert sorted(encoded) == ["Toy Story 2 | Comedy", "x | y"]  # only new or changed texts
    np.testing.assert_array_equal(again["a"], vectors["a"])


def test_fit_text_projection_recovers_a_linear_map():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 8))
    w = rng.normal(size=(8, 3))
    np.testing.assert_allclose(fit_text_projection(x, x @ w, ridge=1e-8), w, atol=1e-5)


def test_pca_projection_shape_and_scale():
    z = pca_projection(np.random.default_rng(0).normal(size=(50, 10)), 4, std=0.02)
    assert z.shape == (50, 4)
    assert z.std() == pytest.approx(0.02, rel=1e-3)


def test_item_text_leaves_out_the_separator_when_a_part_is_missing():
    assert item_text("Heat", "Crime") == "Heat | Crime"
    assert item_text("Heat", None) == item_text("Heat", "") == "Heat"
    assert item_text(None, "Crime") == item_text(float("nan"), "Crime") == "Crime"  # NaN: a pandas null
    assert item_text(None, None) == ""


def test_the_train_stage_encodes_item_text(tmp_path, monkeypatch):
    # The text cache is keyed by the text: the stage must hand train_model exactly item_text's output.
    from datetime import datetime, timezone

    import pyarrow as pa
    import pyarrow.parquet as pq

    import recsys_tasks.modeling.training as training
    from recsys_tasks.config import RecsysConfig
    from recsys_tasks.data import synth
    from recsys_tasks.data.snapshot import EVENTS_SCHEMA, ITEMS_SCHEMA
    from recsys_tasks.stages.train import train_from_snapshot

    events, items = synth.generate(
        n_users=10, n_items=6, start=datetime(2026, 1, 1, tzinfo=timezone.utc),
        end=datetime(2026, 1, 5, tzinfo=timezone.utc), events_per_user_per_day=2.0, seed=0,
    )
    items.loc[0, "category"] = None
    items.loc[1, "title"] = None
    for name, frame, schema in (("events", events, EVENTS_SCHEMA), ("items", items, ITEMS_SCHEMA)):
        table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
        pq.write_table(table, tmp_path / f"{name}.parquet")
    seen = {}

    def fake_train_model(**kwargs):
        seen.update(kwargs["item_text"])
        return training.TrainResult(model_dir=tmp_path, metrics={})

    monkeypatch.setattr(training, "train_model", fake_train_model)
    cfg = RecsysConfig.from_mapping({"artifact_root": str(tmp_path / "artifacts")})
    cutoff = datetime(2026, 1, 4, tzinfo=timezone.utc)
    train_from_snapshot(cfg, snapshot=tmp_path, cutoff=cutoff, out_dir=tmp_path / "m")
    assert seen == {
        str(row.item_id): item_text(row.title, row.category) for row in items.itertuples()
    }
    assert seen[str(items.item_id[0])] == items.title[0]  # no dangling " | "
