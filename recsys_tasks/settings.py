"""The process environment: every ``RECSYS_*`` variable the project reads, typed, in one place.

The DAG files read it when they are parsed (queue, pool, schedules, retries, the asset), the failure
notifier when its callback runs, the CLI for its defaults, and ``RecsysConfig.from_env`` for the
config file. An empty variable counts as unset, so ``VAR=`` in a compose ``.env`` file means the
default. Every variable is documented in ``docs/configuration.md``. This module imports nothing
heavy: a DAG file imports it at parse time.
"""

from __future__ import annotations

from datetime import time
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from recsys_tasks.config_types import ConfigError, Names

#: A comma-separated list ("a, b"); NoDecode keeps pydantic-settings from parsing it as JSON.
CommaList = Annotated[Names, NoDecode]


class RecsysSettings(BaseSettings):
    """The ``RECSYS_*`` environment; read anew each time one is constructed."""

    model_config = SettingsConfigDict(
        env_prefix="RECSYS_",
        env_ignore_empty=True,  # VAR= in a compose .env file means "use the default"
        extra="forbid",
        frozen=True,
    )

    #: Path of the YAML/JSON configuration file; unset: the defaults.
    config: Path | None = None
    #: Airflow connection of the warehouse (DAG tasks and the UI plugin).
    warehouse_conn_id: str = "recsys_warehouse"
    #: Airflow connection the events and the catalogue are read through (read-only); unset:
    #: ``warehouse_conn_id`` (always filled after construction).
    source_conn_id: str | None = None
    #: Airflow connection of our output schema (written; the UI reads it); unset: ``warehouse_conn_id``.
    output_conn_id: str | None = None
    #: Warehouse SQLAlchemy URL for the ``recsys_tasks.cli`` commands.
    warehouse_url: str | None = None
    #: Cron of ``recsys_retrain``.
    schedule: str = "0 0 * * *"
    #: Asset URI that schedules ``recsys_retrain`` instead of the cron.
    schedule_asset: str | None = None
    #: Cron of ``recsys_refresh``.
    refresh_schedule: str = "0 * * * *"
    #: Retries of each ``recsys_retrain`` task.
    task_retries: int = Field(2, ge=0)
    #: Celery queue of the train, evaluate and publish tasks.
    gpu_queue: str = "default"
    #: Airflow pool of the train, evaluate and publish tasks.
    gpu_pool: str = "default_pool"
    #: Asset updated by every publication and refresh.
    recommendations_asset: str = "recsys://recsys/recommendations"
    #: Cron of ``recsys_freshness``, the check that the day's recommendations are published.
    freshness_schedule: str = "*/15 * * * *"
    #: Time of day (UTC, ``HH:MM``) by which the recommendations of as-of date D must be published on D.
    publish_deadline: time = Field("06:00", validate_default=True)  # as written in the environment (and the docs)
    #: Channels that report failed tasks, late publications, promotions and rollbacks: ``log``,
    #: ``email``, ``slack``.
    notify: CommaList = ("log",)
    #: Recipients of the ``email`` channel.
    notify_email: CommaList = ()
    #: SMTP connection of the ``email`` channel.
    notify_smtp_conn_id: str = "smtp_default"
    #: Slack connection of the ``slack`` channel.
    notify_slack_conn_id: str = "slack_api_default"
    #: Slack channel the notifications are posted to.
    notify_slack_channel: str = "#recsys-alerts"

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ConfigError("; ".join(_explain(err) for err in exc.errors())) from None

    @model_validator(mode="before")
    @classmethod
    def _one_connection_by_default(cls, values: Any) -> Any:
        if isinstance(values, dict):
            warehouse = values.get("warehouse_conn_id") or cls.model_fields["warehouse_conn_id"].default
            values = {**values, **{k: warehouse for k in ("source_conn_id", "output_conn_id") if not values.get(k)}}
        return values

    @field_validator("notify")
    @classmethod
    def _lower_case(cls, channels: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(c.lower() for c in channels)

    @field_validator("publish_deadline")
    @classmethod
    def _utc_time_of_day(cls, at: time) -> time:
        if at.tzinfo is not None:
            raise ValueError("give the deadline as HH:MM in UTC, without an offset")
        return at

    @field_validator("schedule_asset")
    @classmethod
    def _blank_is_unset(cls, uri: str | None) -> str | None:
        return (uri or "").strip() or None


def _explain(err: Any) -> str:
    variable = "RECSYS_" + "_".join(str(part) for part in err["loc"]).upper()
    return f"{variable}={err.get('input')!r}: {err['msg']}"
