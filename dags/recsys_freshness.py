"""
### recsys_freshness: say so when the morning's recommendations are late

Every 15 minutes (`$RECSYS_FRESHNESS_SCHEDULE`) the run checks `<output_schema>.publications` for
the as-of date of its day D (UTC; what the nightly `recsys_retrain` run of logical date D - 1
publishes). From `$RECSYS_PUBLISH_DEADLINE` (`HH:MM` UTC, default 06:00) on, a missing publication is
reported through `$RECSYS_NOTIFY` (the channels of the failure notifications) as
"Recommendations for D not published by HH:MM UTC" — once per date: the date is remembered in the
Airflow Variable `recsys_freshness_alerted`, so later checks of D stay quiet (delete the Variable to
be told again). Before the deadline, or once the publication is there (even late), a run only logs
what it found. The run succeeds either way; it fails (and the failure notifier reports it) only when
the warehouse cannot be read. Paused at creation like every DAG: unpause it to be told.

Why a check DAG and not Airflow's deadline alerts: a deadline alert watches a DAG run, so it stays
silent exactly when mornings are late most often (the DAG paused, the scheduler down, no run created,
a run that succeeded without publishing, e.g. a dry run), and it is experimental in Airflow 3.
This checks the table readers read. Library: `recsys_tasks/freshness.py`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import CronTriggerTimetable, dag, task
from recsys_context import settings
from recsys_notify import RecsysFailureNotifier


@dag(
    dag_id="recsys_freshness",
    schedule=CronTriggerTimetable(settings.freshness_schedule, timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=10),
    tags=["recsys", "monitoring"],
    doc_md=__doc__,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=1), "owner": "recsys", "on_failure_callback": RecsysFailureNotifier()},
)
def recsys_freshness() -> None:
    @task(execution_timeout=timedelta(minutes=5))
    def check_publication(**context: Any) -> dict[str, Any]:
        from recsys_context import output_url
        from recsys_notify import alert_once

        from recsys_tasks import freshness

        # The run's own time, not the clock: a rerun of a run judges the same date and deadline.
        checked_at = context.get("logical_date") or context["dag_run"].run_after
        status = freshness.check(output_url(), checked_at=checked_at, deadline=settings.publish_deadline)
        if status.late:
            alert_once(context, status.as_of.isoformat(), *status.message())
        return status.to_dict()

    check_publication()


recsys_freshness()
