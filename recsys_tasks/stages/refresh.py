"""Hourly refresh: re-score only the users with new behaviour into the latest publication.

No training. The champion that made the latest publication scores every user with an item event in
``[since, end)``, where ``since`` is the later of the refresh interval's start and the end of the
publication's data (midnight of its as-of date: older events are already in it). Each such user's
history is rebuilt from ``window.history_days`` before the interval up to ``end``, so the refreshed
rows are what the nightly publish would have written with tonight's events included.

The rows are written in one transaction (``data.publication.replace_user_rows``): a reader sees
every refreshed user's old rows or new rows, never a mix, and the publication row always matches
its rows. Rerunning a refresh for the same interval rewrites the same users with the same
recommendations. The rows are checked like a nightly publish's (``data.publish_safety``): a broken
model's short lists never replace good ones, and the refresh fails instead, naming the user.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from recsys_tasks.config import RecsysConfig
from recsys_tasks.stages.context import RunContext, names_storage_failures
from recsys_tasks.timeutil import as_date, day_start, utc

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RefreshResult:
    """What one refresh did; ``skipped`` says why it wrote nothing (``None`` when it wrote)."""

    as_of: str | None
    model_version: str | None
    since: str | None
    end: str
    users: int = 0
    rows: int = 0
    replaced_rows: int = 0
    new_users: int = 0
    seconds: float = 0.0
    skipped: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@names_storage_failures("refresh")
def run(ctx: RunContext) -> dict[str, Any]:
    """Re-score users with events in the run's interval into the latest publication (no training)."""
    return refresh_publication(
        ctx.engine, ctx.config, start=ctx.interval_start, end=ctx.interval_end, run_id=ctx.run_id,
        source_engine=ctx.source_engine,
    ).to_dict()


def refresh_publication(
    engine: sa.Engine,
    config: RecsysConfig,
    *,
    start: datetime,
    end: datetime,
    run_id: str,
    source_engine: sa.Engine | None = None,
) -> RefreshResult:
    """Re-score the users with item events in ``[start, end)`` into the latest publication.

    The events and the catalogue are read through ``source_engine`` (None: ``engine``); the
    publication is read and written through ``engine``.
    """
    from recsys_tasks.data.publication import latest_publication, replace_user_rows
    from recsys_tasks.data.publish_safety import PublishPolicy
    from recsys_tasks.data.snapshot import read_active_histories, read_catalogue
    from recsys_tasks.data.warehouse import ensure_output_schema
    from recsys_tasks.modeling.hardware import apply_threads
    from recsys_tasks.registry import champion_at
    from recsys_tasks.serving.eligibility import list_spec
    from recsys_tasks.serving.ranking import champion_rows
    from recsys_tasks.serving.recommender import load_recommender
    from recsys_tasks.storage import ArtifactStore

    started = time.monotonic()
    start, end = utc(start), utc(end)
    source = source_engine or engine
    schema = config.warehouse.output_schema
    ensure_output_schema(engine, schema)
    latest = latest_publication(engine, schema)
    if latest is None:
        return _skip(end, "there is no publication yet; the nightly recsys_retrain run writes the first one")
    as_of = as_date(latest.as_of)
    since = max(start, day_start(as_of))
    if since >= end:
        return _skip(end, f"the publication of {as_of} already covers events before {day_start(as_of):%Y-%m-%d %H:%M}", as_of=as_of)
    champion = champion_at(engine, schema, as_of)  # the champion of the publication's date
    if champion is None or champion.model_version != latest.model_version:
        # One publication is one model's output: a new champion publishes through recsys_retrain.
        return _skip(
            end,
            f"the publication of {as_of} was made by {latest.model_version} but the champion is "
            f"{champion.model_version if champion else 'none'}; the next recsys_retrain publish uses the new champion",
            as_of=as_of,
        )
    history_start = start - timedelta(days=config.window.history_days)
    events = read_active_histories(source, config.warehouse, history_start=history_start, since=since, end=end)
    if events.empty:
        return _skip(end, f"no user has item events in [{since:%Y-%m-%d %H:%M}, {end:%Y-%m-%d %H:%M})", as_of=as_of, since=since)
    apply_threads(config.train.num_threads, what="scoring")
    recommender = load_recommender(champion.verified_dir(ArtifactStore.from_config(config)), device=config.train.device)
    catalogue, users = read_catalogue(source, config.warehouse, end=end), sorted(set(events["user_id"].astype(str)))
    k = min(int(latest.top_k), len(recommender.vocab) - 1)
    # The nightly publish's path, rules included; trending counts come from the refreshed users' events.
    rows = champion_rows(
        recommender, events, catalogue, users=users, config=config.publish, k=k, as_of=as_of, run_id=run_id,
        model_version=champion.model_version,
    )
    replaced = replace_user_rows(
        engine, schema, rows, as_of=as_of, model_version=champion.model_version,
        spec=list_spec(recommender.vocab, events, catalogue, users=users, config=config.publish, k=k),
        policy=PublishPolicy.from_config(config.publish),
    )
    if replaced is None:
        return _skip(end, f"the publication of {as_of} changed while refreshing; the next refresh retries", as_of=as_of, since=since)
    result = RefreshResult(
        as_of=as_of.isoformat(),
        model_version=champion.model_version,
        since=since.isoformat(),
        end=end.isoformat(),
        users=replaced.users,
        rows=replaced.rows,
        replaced_rows=replaced.old_rows,
        new_users=replaced.users - replaced.old_users,
        seconds=round(time.monotonic() - started, 3),
    )
    log.info(
        "refreshed %d users (%d new to the publication) of the publication of %s with %s: %d rows in %.1fs",
        result.users, result.new_users, as_of, champion.model_version, result.rows, result.seconds,
    )
    return result


def _skip(end: datetime, reason: str, *, as_of: date | None = None, since: datetime | None = None) -> RefreshResult:
    log.info("refresh skipped: %s", reason)
    return RefreshResult(
        as_of=as_of.isoformat() if as_of else None,
        model_version=None,
        since=since.isoformat() if since else None,
        end=end.isoformat(),
        skipped=reason,
    )
