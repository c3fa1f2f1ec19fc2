"""The ASGI application factory: routes from the core and from plugins, one lifespan."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from appliance.core.plugins import flatten
from appliance.core.runtime import Appliance
from appliance.core.stores import StoreUnavailable
from appliance.doctor import collect_checks
from appliance.metrics import Metrics
from appliance.resources import resource_path
from appliance.web import (
    dashboard,
    domains,
    ingest,
    invitations,
    members,
    openapi,
    pages,
    pixel,
    readiness,
    stats,
)
from appliance.web import metrics as metrics_web
from appliance.web.access import ApiDenied
from appliance.web.errors import json_error
from appliance.web.metrics_server import start_metrics_server
from appliance.web.pages import error_page
from appliance.web.security import BrowserSecurityMiddleware
from appliance.web.templating import build_templates


async def _store_unavailable(request: Request, exc: Exception) -> Response:
    """A database that is away: say so (503, retry soon) instead of a stack trace."""
    if request.url.path.startswith("/api/"):
        return json_error(503, str(exc), headers={"Retry-After": "5"})
    response = error_page(request, 503, "Data temporarily unavailable", str(exc))
    response.headers["Retry-After"] = "5"
    return response


async def _api_denied(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiDenied)
    return json_error(exc.status, exc.message)


ERROR_TEXT = {
    404: ("Page not found", "There is nothing at this address."),
    405: ("Not allowed", "This address does not take that kind of request."),
    500: ("Something went wrong", "The error was logged; please try again in a moment."),
}


async def _http_error(request: Request, exc: Exception) -> Response:
    """Errors are pages for people and JSON for the API."""
    status = getattr(exc, "status_code", 500)
    title, message = ERROR_TEXT.get(status, ("Error", "The request could not be served."))
    if request.url.path.startswith("/api/"):
        return json_error(status, title.lower())
    return error_page(request, status, title, message)


def create_app(appliance: Appliance | None = None, *, process: bool | None = None) -> Starlette:
    """Build the app around an Appliance (created from settings when not given)."""
    appliance = appliance or Appliance.create()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await appliance.start(serve=True, process=process)
        try:
            metrics_server = await start_metrics_server(appliance, app.state.metrics)
        except BaseException:
            await appliance.stop()
            raise
        try:
            yield
        finally:
            await appliance.stop()  # drain, flush, commit (uvicorn stopped taking requests)
            if metrics_server is not None:
                await asyncio.to_thread(metrics_server.stop)

    plugin_routes: list[Any] = flatten(appliance.manager.hook.register_routes(appliance=appliance))
    for provider in appliance.auth_providers:
        plugin_routes.extend(provider.routes)
    static = StaticFiles(directory=str(resource_path("templates") / "static"))
    app = Starlette(
        routes=[
            *pixel.routes,
            *openapi.routes,
            *stats.routes,
            *domains.routes,
            *readiness.routes,
            *metrics_web.routes,
            *plugin_routes,
            *dashboard.routes,
            *members.routes,
            *invitations.routes,
            *pages.routes,
            Mount("/static", static, name="static"),
        ],
        lifespan=lifespan,
        exception_handlers={
            ApiDenied: _api_denied,
            StoreUnavailable: _store_unavailable,
            HTTPException: _http_error,
            500: _http_error,
        },
    )
    settings = appliance.settings
    app.add_middleware(BrowserSecurityMiddleware, secure_cookies=settings.auth.secure_cookies)
    app.state.metrics = Metrics(appliance)
    app.state.readiness = readiness.Readiness(collect_checks(appliance))
    recorder = metrics_web.RequestRecorder(app.state.metrics, bool(settings.log_access))
    # Times everything behind it, security headers included.
    app.add_middleware(metrics_web.RequestMetricsMiddleware, recorder=recorder)
    # Outermost (inside Starlette's error handler): /api/events skips the page machinery.
    events = ingest.EventsEndpoint(appliance.ingest, app.state, recorder)
    app.add_middleware(ingest.IngestLane, endpoint=events)
    app.state.appliance = appliance
    app.state.templates = build_templates(appliance.manager)
    app.state.max_body_bytes = int(settings.ingest.max_body_bytes)
    app.state.trusted_proxies = frozenset(settings.ingest.trusted_proxies or ())
    app.state.cors_origins = tuple(settings.ingest.cors_origins or ())
    return app
