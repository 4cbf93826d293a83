"""HTTP wiring of the Recommendations page: routes, authentication, and errors as JSON.

Everything that reads the database is in ``recsys_tasks.insights``; this module only maps its
results and named exceptions onto HTTP. It does not import Airflow: the plugin module passes in how
to find the engine, the configuration and the signed-in user.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response

from recsys_tasks import insights, lookups

from . import datadocs_assets
from recsys_tasks.config import ConfigError, RecsysConfig
from recsys_tasks.data.warehouse import WarehouseError

PAGE = Path(__file__).with_name("page.html")

#: Resolves the signed-in user of a request or raises ``HTTPException`` (401/403).
Authenticate = Callable[[Request], Awaitable[Any]]


class Unconfigured(RuntimeError):
    """The warehouse connection or the configuration cannot be resolved; the message says how to fix it."""


def create_app(
    *,
    engine: Callable[[], sa.Engine],
    config: Callable[[], RecsysConfig],
    authenticate: Authenticate | None,
    login_url: Callable[[str], str] | None = None,
) -> FastAPI:
    """The FastAPI app Airflow mounts under ``/recsys``.

    ``authenticate`` is awaited on every request except the page's redirect to the login;
    ``None`` turns authentication off (only for tests and local tools).
    """
    app = FastAPI(
        title="Recsys recommendations",
        description="Read-only views of the recsys output schema (registry, metrics, validation, top-K).",
        docs_url=None,
        redoc_url=None,
    )
    for exc_type, (status, kind) in _ERRORS.items():
        app.add_exception_handler(exc_type, _error_handler(status, kind))
    sources = _Sources(engine, config)
    require_user = _user_dependency(authenticate)
    app.include_router(_page_router(require_user, login_url))
    app.include_router(_api_router(sources, require_user))
    app.include_router(_data_docs_router(sources, require_user))
    return app


#: The named exceptions of ``insights`` (and ours) as HTTP status and the ``error`` field of the JSON body.
_ERRORS: dict[type[Exception], tuple[int, str]] = {
    insights.InvalidInput: (400, "invalid_input"),
    insights.NotFound: (404, "not_found"),
    insights.NotAvailable: (503, "not_available"),
    Unconfigured: (503, "not_configured"),
}


def _error_handler(status: int, kind: str) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def handle(_request: Request, exc: Exception) -> JSONResponse:
        body = {"error": kind, "detail": str(exc)}
        return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"})

    return handle


def _user_dependency(authenticate: Authenticate | None) -> Authenticate:
    async def require_user(request: Request) -> Any:
        if authenticate is None:
            return None
        return await authenticate(request)

    return require_user


@dataclass(frozen=True)
class _Sources:
    """How routes reach the configuration and the warehouse; what cannot be resolved is ``Unconfigured``."""

    engine: Callable[[], sa.Engine]
    config: Callable[[], RecsysConfig]

    def settings(self) -> RecsysConfig:
        try:
            return self.config()
        except ConfigError as exc:
            raise Unconfigured(f"the recsys configuration ($RECSYS_CONFIG) is invalid: {exc}") from exc

    def both(self) -> tuple[sa.Engine, RecsysConfig]:
        cfg = self.settings()
        try:
            return self.engine(), cfg
        except WarehouseError as exc:
            raise Unconfigured(str(exc)) from exc


def _page_router(require_user: Authenticate, login_url: Callable[[str], str] | None) -> APIRouter:
    router = APIRouter()

    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page(request: Request) -> Response:
        try:
            await require_user(request)
        except HTTPException as exc:
            if login_url is None or exc.status_code not in (401, 403):
                raise
            return RedirectResponse(login_url(str(request.url)), status_code=307)
        return HTMLResponse(PAGE.read_text(encoding="utf-8"), headers={"Cache-Control": "no-store"})

    return router


def _api_router(sources: _Sources, require_user: Authenticate) -> APIRouter:
    api = APIRouter(prefix="/api", dependencies=[Depends(require_user)])

    @api.get("/registry")
    def registry(limit: int = Query(50)) -> dict[str, Any]:
        """The registry timeline: versions, status, decision, parent and primary-metric deltas."""
        eng, cfg = sources.both()
        return insights.registry_timeline(eng, cfg, limit=limit)

    @api.get("/metrics")
    def metrics(
        metric: str | None = Query(None, max_length=20),
        segment: str = Query("all", max_length=64),
        limit: int = Query(300),
    ) -> dict[str, Any]:
        """Metric history of champion, challenger and baseline (the primary metric of all holdout users by default)."""
        eng, cfg = sources.both()
        return insights.metric_history(eng, cfg, metric=metric, segment=segment, limit=limit)

    @api.get("/validation")
    def validation(
        request: Request, run_id: str | None = Query(None, max_length=250), runs: int = Query(20)
    ) -> dict[str, Any]:
        """The newest validation runs and one run's expectation outcomes, with Data Docs links."""
        eng, cfg = sources.both()
        out = insights.validation_summary(eng, cfg, run_id=run_id, runs=runs)
        for run in out["runs"]:
            rel = run.pop("docs_path")
            run["docs_url"] = str(request.url_for("data_docs", path=quote(rel))) if rel else None
        return out

    @api.get("/publication")
    def publication(as_of: str | None = Query(None, max_length=10)) -> dict[str, Any]:
        """The newest publication (or that of ``as_of``)."""
        eng, cfg = sources.both()
        found = insights.latest_publication(eng, cfg, as_of=as_of)
        if found is None:
            raise insights.NotFound("there is no publication yet; the recsys_retrain DAG publishes one per as-of date")
        return found

    @api.get("/publications")
    def publications(limit: int = Query(60)) -> dict[str, Any]:
        """The newest publications (the as-of dates a lookup can show)."""
        eng, cfg = sources.both()
        return lookups.publications(eng, cfg, limit=limit)

    @api.get("/users/{user_id}/recommendations")
    def user_recommendations(user_id: str, as_of: str | None = Query(None, max_length=10)) -> dict[str, Any]:
        """A user's top-K with titles, scores (and what kind of score) and reasons."""
        insights.check_id(user_id, kind="user")  # before touching the database or the connection
        eng, cfg = sources.both()
        return lookups.user_recommendations(eng, cfg, user_id, as_of=as_of)

    @api.get("/users/{user_id}/events")
    def user_events(
        user_id: str, as_of: str | None = Query(None, max_length=10), limit: int = Query(20)
    ) -> dict[str, Any]:
        """The user's newest events before the publication's cutoff."""
        insights.check_id(user_id, kind="user")
        eng, cfg = sources.both()
        return lookups.user_events(eng, cfg, user_id, as_of=as_of, limit=limit)

    @api.get("/items/{item_id}/similar")
    def similar_items(item_id: str, limit: int = Query(20)) -> dict[str, Any]:
        """An item, how many users it reaches in the newest publication, and its similar items."""
        insights.check_id(item_id, kind="item")
        eng, cfg = sources.both()
        return lookups.item_neighbours(eng, cfg, item_id, limit=limit)

    return api


def _data_docs_router(sources: _Sources, require_user: Authenticate) -> APIRouter:
    router = APIRouter(dependencies=[Depends(require_user)])

    @router.get("/datadocs/{path:path}", name="data_docs", include_in_schema=False)
    def data_docs(request: Request, path: str) -> Response:
        """A Great Expectations Data Docs file under the artifact root, local or remote (nothing else is served);
        HTML pages load their scripts and styles from this app instead of CDNs."""
        target = insights.resolve_data_docs(sources.settings(), path)
        headers = {"Cache-Control": "no-store"}
        if target.suffix.lower() in (".html", ".htm"):
            html = target.read_bytes().decode("utf-8", errors="replace")
            local = datadocs_assets.rewrite(html, lambda name: str(request.url_for("data_docs_asset", name=name)))
            return HTMLResponse(local, headers=headers)
        if isinstance(target, Path):  # a local store: streamed from disk
            return FileResponse(target, headers=headers)
        media_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        return Response(target.read_bytes(), media_type=media_type, headers=headers)

    @router.get("/datadocs-assets/{name}", name="data_docs_asset", include_in_schema=False)
    def data_docs_asset(name: str) -> Response:
        """A vendored script or stylesheet Data Docs pages load (jQuery, Bootstrap, Vega, …)."""
        found = datadocs_assets.asset(name)
        if found is None:
            raise insights.NotFound(f"{name!r} is not one of the Data Docs assets served here")
        return FileResponse(found, headers={"Cache-Control": "public, max-age=86400"})

    return router
