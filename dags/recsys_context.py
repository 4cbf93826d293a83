"""The library's RunContext for the task running now: its interval, the warehouse URLs, config + params.

Shared by the recsys DAGs (not a DAG: Airflow puts the DAG folder on ``sys.path``). The warehouse
credentials come from two Airflow connections, one by default: ``$RECSYS_SOURCE_CONN_ID`` (read-only:
events and catalogue) and ``$RECSYS_OUTPUT_CONN_ID`` (our output schema), both defaulting to
``$RECSYS_WAREHOUSE_CONN_ID``. Each is resolved through its provider hook (``connection_url``) and
reaches the library as a SQLAlchemy URL; the library never reads Airflow. The ``RECSYS_*`` environment
is read once, through ``recsys_tasks.settings`` (pydantic only, nothing heavy: this module is imported
at parse time).
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


def connection_url(conn: Any) -> str:
    """The SQLAlchemy URL of an Airflow Connection, resolved through its provider hook when it has one.

    A SQL hook's ``sqlalchemy_url`` honours ``sqlalchemy_scheme``, ``sqlalchemy_query`` and IAM tokens;
    ``recsys_tasks.data.warehouse.connection_url`` then adds the libpq extras (sslmode, sslrootcert, ...)
    the hook's own connections use. Types without a SQL hook (``generic`` with extra ``sqlalchemy_url``,
    ``sqlite`` without its provider) are built from the connection's fields. The URL holds the
    password: hand it on, never log it.
    """
    from urllib.parse import quote

    import sqlalchemy as sa
    from airflow.sdk.log import mask_secret

    from recsys_tasks.data.warehouse import connection_url as url_of

    url = url_of(conn, hook_url=_hook_url(conn))
    # Airflow masks the connection's own password; an IAM token the hook fetched is new to it.
    password = sa.engine.make_url(url).password
    if password:
        mask_secret(password)
        mask_secret(quote(password, safe=""))
    return url


def _hook_url(conn: Any) -> Any:
    """The ``sqlalchemy_url`` of the connection's SQL hook, or None when it has none."""
    from airflow.providers.common.sql.hooks.sql import DbApiHook
    from airflow.sdk.exceptions import AirflowException

    if conn.conn_type in ("generic", "email") or conn.extra_dejson.get("sqlalchemy_url"):
        return None  # Airflow's core types without a hook class (get_hook fails); an explicit URL wins anyway
    try:
        hook = conn.get_hook()
    except AirflowException:  # no provider hook for this type: the fields decide
        return None
    if not isinstance(hook, DbApiHook):
        return None
    try:
        # Built again on this very Connection, so the hook does not look it up a second time.
        return conn.get_hook(hook_params={"connection": conn}).sqlalchemy_url
    except NotImplementedError:  # a SQL hook that builds no SQLAlchemy URL
        return None


def output_url() -> str:
    """The SQLAlchemy URL of the output connection (``$RECSYS_OUTPUT_CONN_ID``), for tasks without a run interval."""
    from airflow.sdk import BaseHook

    return connection_url(BaseHook.get_connection(settings.output_conn_id))


def run_context(context: Any) -> Any:
    """The library's RunContext for this task's run: interval, warehouse URLs, config + params."""
    from airflow.sdk import BaseHook

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
    output_url = connection_url(BaseHook.get_connection(settings.output_conn_id))
    source_url = None  # the output connection
    if settings.source_conn_id != settings.output_conn_id:
        source_url = connection_url(BaseHook.get_connection(settings.source_conn_id))
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
        warehouse_url=output_url,
        source_url=source_url,
        overrides=overrides,
    )
