from __future__ import annotations

import json
from pathlib import Path

import pytest

from recsys_tasks.config import ConfigError, ModelConfig, RecsysConfig, TrainConfig, to_dict
from recsys_tasks.settings import RecsysSettings


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


def test_sections_built_by_keyword_are_validated_too():
    with pytest.raises(ConfigError, match=r"model\.hidden_size=30 must be divisible by model\.num_heads=4"):
        ModelConfig(hidden_size=30, num_heads=4)
    with pytest.raises(ConfigError, match=r"train\.epochs=0: .*greater than or equal to 1"):
        TrainConfig(epochs=0)
    with pytest.raises(ConfigError, match=r"publish\.demote_after=0: .*null switches demotion off"):
        RecsysConfig.from_mapping({"publish": {"demote_after": 0}})
    with pytest.raises(ConfigError, match=r"train\.epochs must not be null"):
        RecsysConfig().with_overrides({"train.epochs": None})
    assert ModelConfig(hidden_size=16, num_heads=4).max_len == ModelConfig().max_len


def test_lists_accept_comma_separated_strings_and_round_trip():
    cfg = RecsysConfig().with_overrides({
        "publish.exclude_event_types": "purchase, rate",
        "warehouse": {"event_columns": {"event_ts": "occurred_at"}},
        "validation.event_type_share_bounds": {"purchase": [0.0, 0.2]},
    })
    assert cfg.publish.exclude_event_types == ("purchase", "rate")
    assert cfg.warehouse.event_column("event_ts") == "occurred_at"
    assert cfg.warehouse.event_column("item_id") == "item_id"
    assert cfg.validation.event_type_share_bounds == {"purchase": (0.0, 0.2)}
    assert RecsysConfig.from_mapping(json.loads(json.dumps(to_dict(cfg)))) == cfg


def test_from_env_reads_the_file_named_by_recsys_config(tmp_path, monkeypatch):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"train": {"epochs": 4}}))
    monkeypatch.setenv("RECSYS_CONFIG", str(path))
    assert RecsysConfig.from_env().train.epochs == 4
    monkeypatch.setenv("RECSYS_CONFIG", "")  # empty counts as unset
    assert RecsysConfig.from_env() == RecsysConfig()


def test_settings_read_the_environment_with_empty_meaning_unset(monkeypatch):
    for name in RecsysSettings.model_fields:
        monkeypatch.delenv(f"RECSYS_{name.upper()}", raising=False)
    assert RecsysSettings().gpu_queue == "default" and RecsysSettings().task_retries == 2
    monkeypatch.setenv("RECSYS_GPU_QUEUE", "")
    monkeypatch.setenv("RECSYS_SCHEDULE_ASSET", "  ")
    monkeypatch.setenv("RECSYS_NOTIFY", "Email, slack,")
    monkeypatch.setenv("RECSYS_NOTIFY_EMAIL", "ml@example.com, ops@example.com")
    monkeypatch.setenv("RECSYS_TASK_RETRIES", "0")
    settings = RecsysSettings()
    assert settings.gpu_queue == "default" and settings.schedule_asset is None and settings.task_retries == 0
    assert settings.notify == ("email", "slack")
    assert settings.notify_email == ("ml@example.com", "ops@example.com")
    monkeypatch.setenv("RECSYS_TASK_RETRIES", "two")
    with pytest.raises(ConfigError, match="RECSYS_TASK_RETRIES='two'"):
        RecsysSettings()


def test_source_and_output_connections_default_to_the_warehouse_connection(monkeypatch):
    for name in RecsysSettings.model_fields:
        monkeypatch.delenv(f"RECSYS_{name.upper()}", raising=False)
    settings = RecsysSettings()
    assert (settings.source_conn_id, settings.output_conn_id) == ("recsys_warehouse", "recsys_warehouse")
    monkeypatch.setenv("RECSYS_WAREHOUSE_CONN_ID", "shop")
    monkeypatch.setenv("RECSYS_OUTPUT_CONN_ID", "")  # empty counts as unset
    assert (RecsysSettings().source_conn_id, RecsysSettings().output_conn_id) == ("shop", "shop")
    monkeypatch.setenv("RECSYS_SOURCE_CONN_ID", "shop_reader")
    monkeypatch.setenv("RECSYS_OUTPUT_CONN_ID", "recsys_writer")
    assert (RecsysSettings().source_conn_id, RecsysSettings().output_conn_id) == ("shop_reader", "recsys_writer")


def _documented_default(value: object) -> str:
    if value in (None, ()):
        return "unset"
    return "`" + (",".join(value) if isinstance(value, tuple) else str(value)) + "`"


def test_every_environment_variable_is_documented_with_its_default():
    docs = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text(encoding="utf-8")
    rows = [
        f"| `RECSYS_{name.upper()}` | {_documented_default(field.default)} |"
        for name, field in RecsysSettings.model_fields.items()
    ]
    missing = [row for row in rows if row not in docs]
    assert not missing, f"document these rows in docs/configuration.md: {missing}"
