"""
### recsys_rollback: make an earlier model champion again, republish, and say so

Manual only (Trigger, with `model_version`): what `python -m recsys_tasks.cli rollback --to <version>`
does, plus a notification through `$RECSYS_NOTIFY`. The version's files are checked against the
registry's checksum first; it becomes champion from the newest published as-of date on (dates
published before keep the model that published them), and that date is republished with it from its
run's cleaned snapshot, so `latest_recommendations` shows the restored model when the run succeeds.
Turn `republish` off to change only the registry. Rerunning is harmless: the version is champion
already and the publication is replaced with the same rows.

The CLI does the same work without Airflow, so it notifies nobody (it prints and logs the result):
use this DAG when the team should hear of it. List the versions with
`python -m recsys_tasks.cli models` or on the Recommendations page. Library: `recsys_tasks/stages/rollback.py`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Param, dag, task
from recsys_context import GPU, settings
from recsys_notify import RecsysFailureNotifier


@dag(
    dag_id="recsys_rollback",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["recsys", "operations"],
    doc_md=__doc__,
    default_args={"retries": settings.task_retries, "retry_delay": timedelta(minutes=2), "owner": "recsys", "on_failure_callback": RecsysFailureNotifier()},
    params={
        "model_version": Param(type="string", minLength=1, description="The registry version to make champion again (see `python -m recsys_tasks.cli models`)."),
        "republish": Param(True, type="boolean", description="Republish the newest published as-of date with it (off: change only the registry)."),
    },
)
def recsys_rollback() -> None:
    # Republishing scores every user: it runs where publish_shard runs.
    @task(**GPU)
    def rollback(**context: Any) -> dict[str, Any]:
        from recsys_context import output_url
        from recsys_notify import announce, rollback_message

        from recsys_tasks import stages

        params = context["params"]
        result = stages.rollback.run(output_url(), params["model_version"], republish=params["republish"])
        announce(context, *rollback_message(result, context))
        return result

    rollback()


recsys_rollback()
