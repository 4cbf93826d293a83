"""Airflow plugin: the "Recommendations" page of the Airflow UI.

The api-server mounts the FastAPI app of ``recsys_ui`` under ``/recsys`` and the UI shows a
"Recommendations" entry in its navigation (an external view rendered inside the Airflow UI).
Every request is authenticated with Airflow's own token (the ``_token`` cookie of a signed-in
browser or an ``Authorization: Bearer`` header) and authorised like reading the ``recsys_retrain``
DAG; the page redirects anonymous browsers to Airflow's login.

The warehouse is the output connection (``$RECSYS_OUTPUT_CONN_ID``, default
``$RECSYS_WAREHOUSE_CONN_ID``), resolved through its provider hook as the DAG resolves it; the output
schema and item mapping come from ``$RECSYS_CONFIG``, exactly as for the DAG. The page's queries join
our output tables with the source items table (titles, categories) in one statement, so that table
must be readable through the output connection: with a separate source database, keep (a copy or a
foreign table of) the items table in the output database (docs/ui.md).
"""

from __future__ import annotations

import sys
import threading
import time
from functools import cache
from pathlib import Path
from typing import Any

from airflow.plugins_manager import AirflowPlugin
from fastapi import HTTPException, Request, status

if str(Path(__file__).resolve().parent) not in sys.path:  # Airflow puts the plugins folder there too
    sys.path.append(str(Path(__file__).resolve().parent))

from recsys_ui.app import create_app  # noqa: E402

from recsys_tasks.config import RecsysConfig  # noqa: E402
from recsys_tasks.data.warehouse import WarehouseError, connection_url  # noqa: E402
from recsys_tasks.insights import create_reader_engine  # noqa: E402

URL_PREFIX = "/recsys"
DAG_ID = "recsys_retrain"
_TTL_SECONDS = 60.0
_lock = threading.Lock()
_cached: dict[str, tuple[float, Any]] = {}


def _ttl_cached(key: str, build: Any) -> Any:
    """``build()``, remembered for a minute: connection and config edits apply without a restart."""
    with _lock:
        hit = _cached.get(key)
        if hit and time.monotonic() - hit[0] < _TTL_SECONDS:
            return hit[1]
    value = build()
    with _lock:
        _cached[key] = (time.monotonic(), value)
    return value


def recsys_config() -> RecsysConfig:
    """The pipeline configuration (``$RECSYS_CONFIG`` or the defaults)."""
    return _ttl_cached("config", RecsysConfig.from_env)


def _warehouse_url() -> str:
    from airflow.exceptions import AirflowNotFoundException
    from airflow.models import Connection

    from recsys_tasks.settings import RecsysSettings

    conn_id = RecsysSettings().output_conn_id
    try:
        conn = Connection.get_connection_from_secrets(conn_id)
    except AirflowNotFoundException as exc:
        raise WarehouseError(
            f"the Airflow connection {conn_id!r} does not exist: create it (Admin -> Connections, or "
            f"AIRFLOW_CONN_{conn_id.upper()}) pointing at the warehouse"
        ) from exc
    return connection_url(conn, hook_url=_hook_url(conn))


def _hook_url(conn: Any) -> Any:
    """The ``sqlalchemy_url`` of the connection's SQL hook, or None (as ``dags/recsys_context.py``'s
    ``connection_url``, which the api-server cannot import: the DAG folder is not on its path)."""
    from airflow.exceptions import AirflowException
    from airflow.providers.common.sql.hooks.sql import DbApiHook

    if conn.conn_type in ("generic", "email") or conn.extra_dejson.get("sqlalchemy_url"):
        return None  # Airflow's hookless core types; an explicit URL wins anyway
    try:
        hook = conn.get_hook()
    except AirflowException:
        return None
    if not isinstance(hook, DbApiHook):
        return None
    try:
        return conn.get_hook(hook_params={"connection": conn}).sqlalchemy_url
    except NotImplementedError:
        return None


@cache
def _engine_for(url: str, output_schema: str) -> Any:
    return create_reader_engine(url, output_schema=output_schema)


def warehouse_engine() -> Any:
    """A read-only engine on the output connection (one per URL and schema)."""
    url = _ttl_cached("url", _warehouse_url)
    return _engine_for(url, recsys_config().warehouse.output_schema)


async def airflow_user(request: Request) -> Any:
    """The signed-in Airflow user, allowed to read the recsys DAG; 401/403 otherwise."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user

    credentials = await bearer_scheme(request)
    user = await get_user(request, None, credentials)
    if not get_auth_manager().is_authorized_dag(method="GET", details=DagDetails(id=DAG_ID), user=user):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"user may not read the {DAG_ID} DAG and its outputs")
    return user


def airflow_login_url(next_url: str) -> str:
    """Airflow's login page, coming back to ``next_url``."""
    from airflow.api_fastapi.app import get_auth_manager

    return get_auth_manager().get_url_login(next_url=next_url)


class RecsysUIPlugin(AirflowPlugin):
    """The Recommendations page: registry, metric history, validation, user and item lookup."""

    name = "recsys_ui"
    fastapi_apps = [
        {
            "app": create_app(
                engine=warehouse_engine,
                config=recsys_config,
                authenticate=airflow_user,
                login_url=airflow_login_url,
            ),
            "url_prefix": URL_PREFIX,
            "name": "Recommendations",
        }
    ]
    external_views = [
        {
            "name": "Recommendations",
            "href": f"{URL_PREFIX}/",
            "destination": "nav",
            "category": "browse",
            "url_route": "recommendations",
        }
    ]
