from __future__ import annotations

from pathlib import Path

import pytest

from recsys_tasks.config import ConfigError, RecsysConfig, to_dict


def test_defaults_round_trip_through_a_mapping():
    cfg = RecsysConfig()
    assert RecsysConfig.from_mapping(to_dict(cfg)) == cfg


def test_dotted_and_nested_overrides():
    cfg = RecsysConfig().with_overrides({"train.epochs": "3", "publish": {"top_k": 5}, "train.full_retrain": "true"})
    assert cfg.train.epochs == 3 and cfg.publish.top_k == 5 and cfg.train.full_retrain is True
    assert cfg.model == RecsysConfig().model


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match=r"train\.epoch"):
        RecsysConfig.from_mapping({"train": {"epoch": 3}})


@pytest.mark.parametrize("name", ["events; DROP TABLE x", "1events", "ev-ents", ""])
def test_identifiers_from_config_are_validated(name):
    with pytest.raises(ConfigError, match="warehouse.events_table"):
        RecsysConfig.from_mapping({"warehouse": {"events_table": name}})


def test_bad_values_say_what_to_use():
    with pytest.raises(ConfigError, match="cuda"):
        RecsysConfig.from_mapping({"train": {"device": "tpu"}})
    with pytest.raises(ConfigError, match="not a int"):
        RecsysConfig.from_mapping({"train": {"epochs": "many"}})
    with pytest.raises(ConfigError, match="exclude_event_types"):
        RecsysConfig.from_mapping({"publish": {"exclude_event_types": ["purchased"]}})


def test_from_file_yaml(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  epochs: 2\nwarehouse:\n  event_columns:\n    event_ts: occurred_at\n")
    cfg = RecsysConfig.from_file(path)
    assert cfg.train.epochs == 2
    assert cfg.warehouse.event_column("event_ts") == "occurred_at"
    assert cfg.warehouse.event_column("user_id") == "user_id"


def _keys(tree, prefix=""):
    for key, value in tree.items():
        if isinstance(value, dict) and key not in ("event_columns", "item_columns", "event_type_share_bounds"):
            yield from _keys(value, f"{prefix}{key}.")
        else:
            yield prefix + key


def test_every_config_key_is_documented():
    docs = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text(encoding="utf-8")
    missing = [key for key in _keys(to_dict(RecsysConfig())) if f"`{key}`" not in docs]
    assert not missing, f"document these keys in docs/configuration.md: {missing}"
