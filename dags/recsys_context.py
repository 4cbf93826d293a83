"""The library's RunContext for the task running now: its interval, the warehouse URL, config + params.

Shared by the recsys DAGs (not a DAG: Airflow puts the DAG folder on ``sys.path``). The warehouse
credentials come from the Airflow connection ``$RECSYS_WAREHOUSE_CONN_ID`` and reach the library
as a SQLAlchemy URL; the library never reads Airflow. The ``RECSYS_*`` environment is read once, through
``recsys_tasks.settings`` (pydantic only, nothing heavy: this module is imported at parse time).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Asset

from recsys_tasks.settings import RecsysSettings

#: The ``RECSYS_*`` environment as it was when the DAG files were parsed.
settings = RecsysSettings()
#: Where the heavy tasks run: the GPU worker's queue and pool in the compose stack; the default
#: queue and pool (any worker, LocalExecutor included) when the variables are unset.
GPU = {"queue": settings.gpu_queue, "pool": settings.gpu_pool}
#: Updated by every publication, so downstream DAGs can schedule on fresh recommendations.
RECOMMENDATIONS = Asset(settings.recommendations_asset)


def run_context(context: Any) -> Any:
    """The library's RunContext for this task's run: interval, warehouse URL, config + params."""
    from airflow.sdk import BaseHook

    from recsys_tasks.data.warehouse import url_from_connection_fields
    from recsys_tasks.stages.context import make_context, run_interval

    params = context["params"]
    start, end = run_interval(
        data_interval_start=context.get("data_interval_start"),
        data_interval_end=context.get("data_interval_end"),
        as_of=params.get("as_of"),
        fallback=context.get("logical_date") or context["dag_run"].run_after,
        asset_events=[
            {"extra": dict(event.extra or {}), "timestamp": event.timestamp}
            for events in (context.get("triggering_asset_events") or {}).values()
            for event in events
        ],
    )
    conn = BaseHook.get_connection(settings.warehouse_conn_id)
    url = url_from_connection_fields(conn)
    overrides = {
        "train.epochs": params.get("epochs"),
        "train.fine_tune_epochs": params.get("epochs"),
        "window.history_days": params.get("history_days"),
        "publish.top_k": params.get("top_k"),
    }
    return make_context(
        dag_id=context["dag"].dag_id,
        run_id=context["run_id"],
        interval_start=start,
        interval_end=end,
        warehouse_url=url,
        overrides=overrides,
    )
