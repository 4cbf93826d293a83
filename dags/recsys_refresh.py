"""
### recsys_refresh: hourly re-scoring of the users with new behaviour

Every hour (`$RECSYS_REFRESH_SCHEDULE`), without retraining: the champion that made the latest
publication re-scores the users with item events in the run's data interval (events already covered
by the publication are skipped), their histories rebuilt from `window.history_days` up to the end
of the interval, and their rows of that publication are replaced in one transaction (the
publication's user and row counts stay equal to its rows). A run that has nothing to do (no
publication yet, no new events, a new champion not yet published) succeeds and says why.

Updates the asset `$RECSYS_RECOMMENDATIONS_ASSET`. Library: `recsys_tasks/refresh.py`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import CronDataIntervalTimetable, dag, task
from recsys_context import GPU, RECOMMENDATIONS, settings
from recsys_notify import RecsysFailureNotifier


@dag(
    dag_id="recsys_refresh",
    schedule=CronDataIntervalTimetable(settings.refresh_schedule, timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=50),
    tags=["recsys", "serving"],
    doc_md=__doc__,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=2), "owner": "recsys", "on_failure_callback": RecsysFailureNotifier()},
)
def recsys_refresh() -> None:
    @task(outlets=[RECOMMENDATIONS], execution_timeout=timedelta(minutes=30), **GPU)
    def refresh(**context: Any) -> dict[str, Any]:
        from recsys_context import run_context

        from recsys_tasks import stages

        return stages.refresh.run(run_context(context))

    refresh()


recsys_refresh()
