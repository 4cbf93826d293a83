"""Is the day's publication there by its deadline? The check behind the ``recsys_freshness`` DAG.

The nightly run whose data interval ends at midnight UTC starting day D publishes as-of date D, so on
day D readers expect ``<output_schema>.publications`` to hold a row for D by the deadline
(``RECSYS_PUBLISH_DEADLINE``, a UTC time of day). A check reads that one row; it says the publication
is *late* when the row is missing at or after the deadline. A row that arrived after the deadline
counts as there: the check answers "can readers get D now?", which is what a page is about. Who is
told, and only once per date, is the DAG's business (the library never reads Airflow).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa

from recsys_tasks.config import RecsysConfig
from recsys_tasks.sqlfiles import statement
from recsys_tasks.timeutil import as_date, day_start, iso, iso_or_none, utc, utc_or_none

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Freshness:
    """The publication of one as-of date as seen at ``checked_at``, against its deadline."""

    as_of: date
    deadline: datetime
    checked_at: datetime
    #: When the publication was committed; None: not published (yet).
    published_at: datetime | None = None
    model_version: str | None = None
    run_id: str | None = None
    users: int | None = None

    @property
    def published(self) -> bool:
        return self.published_at is not None

    @property
    def due(self) -> bool:
        """Whether the deadline has passed at ``checked_at``."""
        return self.checked_at >= self.deadline

    @property
    def late(self) -> bool:
        """Due and still missing: readers get an older date's recommendations."""
        return self.due and not self.published

    def message(self) -> tuple[str, str]:
        """``(subject, body)`` of the late-publication alert."""
        by = f"{self.deadline:%H:%M} UTC"
        subject = f"[recsys] Recommendations for {self.as_of} not published by {by}"
        body = "\n".join(
            [
                f"No publication of as-of date {self.as_of} in the publications table at {self.checked_at:%Y-%m-%d %H:%M} UTC "
                f"(deadline {self.deadline:%Y-%m-%d %H:%M} UTC); latest_recommendations still shows an older date.",
                f"Look at the recsys_retrain run whose data interval ends at {day_start(self.as_of):%Y-%m-%d %H:%M} UTC "
                f"(logical date {self.as_of - timedelta(days=1)}): is it running, failed, or was the DAG paused?",
            ]
        )
        return subject, body

    def summary(self) -> str:
        """One line for the task log."""
        if self.published:
            after = " (after the deadline)" if self.published_at > self.deadline else ""
            return f"{self.as_of} published at {self.published_at:%Y-%m-%d %H:%M} UTC{after} by model {self.model_version}"
        if not self.due:
            return f"{self.as_of} not published yet; due at {self.deadline:%Y-%m-%d %H:%M} UTC"
        return f"{self.as_of} not published by {self.deadline:%H:%M} UTC: late"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for XCom."""
        return {
            "as_of": self.as_of.isoformat(),
            "deadline": self.deadline.isoformat(),
            "checked_at": self.checked_at.isoformat(),
            "published_at": iso_or_none(self.published_at),
            "model_version": self.model_version,
            "run_id": self.run_id,
            "users": self.users,
            "late": self.late,
        }


def deadline_of(as_of: date, at: time) -> datetime:
    """The instant on day ``as_of`` (UTC) by which its publication is due."""
    return day_start(as_of) + timedelta(hours=at.hour, minutes=at.minute, seconds=at.second)


def publication_status(engine: sa.Engine, schema: str, *, checked_at: datetime, deadline: time) -> Freshness:
    """The publication of ``checked_at``'s (UTC) date, read from ``<schema>.publications``.

    An output schema without a publications table (nothing was ever published) counts as not published.
    """
    checked_at = utc(checked_at)
    as_of = as_date(checked_at)
    status = Freshness(as_of=as_of, deadline=deadline_of(as_of, deadline), checked_at=checked_at)
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("publications", schema=schema):
            log.warning("%s.publications does not exist: no run has published yet", schema)
            return status
        row = conn.execute(statement("select_publication", schema=schema), {"as_of": iso(as_of)}).first()
    if row is None:
        return status
    return Freshness(
        as_of=as_of, deadline=status.deadline, checked_at=checked_at, published_at=utc_or_none(row.published_at),
        model_version=row.model_version, run_id=row.run_id, users=row.users,
    )


def check(warehouse_url: str, *, checked_at: datetime, deadline: time, config: RecsysConfig | None = None) -> Freshness:
    """:func:`publication_status` on the output schema of ``config`` (default ``$RECSYS_CONFIG``) at ``warehouse_url``."""
    from recsys_tasks.data.warehouse import create_engine

    cfg = config or RecsysConfig.from_env()
    wh = cfg.warehouse
    engine = create_engine(
        warehouse_url, output_schema=wh.output_schema,
        connect_timeout_s=wh.connect_timeout_s, statement_timeout_s=wh.statement_timeout_s or None,
    )
    try:
        status = publication_status(engine, wh.output_schema, checked_at=checked_at, deadline=deadline)
    finally:
        engine.dispose()
    log.info("freshness: %s", status.summary())
    return status
