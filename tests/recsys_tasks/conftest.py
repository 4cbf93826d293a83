"""Tiny sequence fixtures shared by the model, training and recommender tests."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import sqlalchemy as sa
import torch

from recsys_tasks.config import ModelConfig, TrainConfig
from recsys_tasks.data.sequences import ItemVocab, SequenceData


def make_sequences(num_users: int = 24, num_items: int = 12, length: int = 8, seed: int = 0) -> SequenceData:
    """Users walk the catalogue in steps of one (item i is followed by i + 1), from random starts."""
    rng = np.random.default_rng(seed)
    data = SequenceData([], [], [], [])
    for u in range(num_users):
        start = int(rng.integers(0, num_items))
        n = int(rng.integers(3, length + 1))
        data.user_ids.append(f"u{u}")
        data.items.append((start + np.arange(n)) % num_items + 1)
        data.event_types.append(np.full(n, 1, dtype=np.int64))
        data.timestamps.append(1_700_000_000 + 3600 * np.arange(n, dtype=np.int64))
    return data


@pytest.fixture
def tiny_data() -> tuple[SequenceData, ItemVocab]:
    vocab = ItemVocab([f"i{i}" for i in range(12)])
    return make_sequences(), vocab


@pytest.fixture
def tiny_model_cfg() -> ModelConfig:
    return ModelConfig(hidden_size=16, num_layers=1, num_heads=2, max_len=6, dropout=0.0, use_item_text=False)


@pytest.fixture
def tiny_train_cfg() -> TrainConfig:
    return TrainConfig(
        epochs=3, batch_size=8, learning_rate=1e-2, patience=10, device="cpu", log_every_seconds=0.0
    )


@pytest.fixture(autouse=True)
def _few_threads() -> None:
    torch.set_num_threads(1)


@pytest.fixture(params=["postgresql", "sqlite"])
def output_db(request, sqlite_url) -> Iterator[tuple[sa.Engine, str]]:
    """An engine and an output schema made by ``ensure_output_schema``, on each dialect."""
    from recsys_tasks.data import warehouse

    if request.param == "postgresql":
        engine = request.getfixturevalue("pg_engine")
        schema = request.getfixturevalue("pg_schema")
        warehouse.ensure_output_schema(engine, schema)
        yield engine, schema
    else:
        engine = warehouse.create_engine(sqlite_url)
        warehouse.ensure_output_schema(engine, "recsys")
        yield engine, "recsys"
        engine.dispose()
