"""The browser pages of the core: login page, logout, a minimal dashboard, health, tracker."""

from __future__ import annotations

import functools
import gzip
import hashlib
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from appliance.core.stores import call
from appliance.resources import resource_path
from appliance.web.access import ApiDenied
from appliance.web.domains import create_site
from appliance.web.security import (
    CSRF_FIELD,
    appliance_of,
    csrf_token,
    csrf_valid,
    current_user,
    log_out,
)

NEEDS_SETUP = "/setup"


def render(request: Request, template: str, context: dict[str, Any], status: int = 200) -> Response:
    base = {"csrf_token": csrf_token(request), "csrf_field": CSRF_FIELD}
    return request.app.state.templates.TemplateResponse(
        request, template, base | context, status_code=status
    )


def error_page(request: Request, status: int, title: str, message: str) -> Response:
    return render(request, "error.html", {"title": title, "message": message}, status=status)


async def login_redirect(request: Request) -> RedirectResponse:
    users = await call(appliance_of(request).accounts.count_users)
    return RedirectResponse(NEEDS_SETUP if users == 0 else "/login", status_code=303)


async def home(request: Request) -> Response:
    """The landing page for visitors; people who are logged in go to their sites."""
    if await current_user(request):
        return RedirectResponse("/dashboard", status_code=303)
    if await call(appliance_of(request).accounts.count_users) == 0:
        return RedirectResponse(NEEDS_SETUP, status_code=303)
    return render(request, "landing.html", {})


async def login_page(request: Request) -> Response:
    appliance = appliance_of(request)
    if await call(appliance.accounts.count_users) == 0:
        return RedirectResponse(NEEDS_SETUP, status_code=303)
    if await current_user(request):
        return RedirectResponse("/dashboard", status_code=303)
    error = request.query_params.get("error", "")
    return render(
        request, "login.html", {"providers": appliance.auth_providers, "error": error[:200]}
    )


async def logout(request: Request) -> Response:
    form = await request.form()
    if not csrf_valid(request, str(form.get(CSRF_FIELD, ""))):
        return Response("Invalid or missing CSRF token.", status_code=403)
    response = RedirectResponse("/login", status_code=303)
    await log_out(request, response)
    return response


def snippet(request: Request, domain: str) -> str:
    base = appliance_of(request).settings.get("public_url") or str(request.base_url)
    return f'<script defer data-domain="{domain}" src="{base.rstrip("/")}/tracker.js"></script>'


async def dashboard(request: Request, error: str = "", status: int = 200) -> Response:
    user = await current_user(request)
    if user is None:
        return await login_redirect(request)
    appliance = appliance_of(request)
    memberships = await call(appliance.accounts.memberships, user.id)
    sites = [{"membership": m, "snippet": snippet(request, m.site.domain)} for m in memberships]
    context = {"user": user, "sites": sites, "error": error}
    return render(request, "dashboard.html", context, status=status)


async def add_site(request: Request) -> Response:
    user = await current_user(request)
    if user is None:
        return await login_redirect(request)
    form = await request.form()
    if not csrf_valid(request, str(form.get(CSRF_FIELD, ""))):
        return Response("Invalid or missing CSRF token.", status_code=403)
    try:
        await create_site(request, str(form.get("domain", "")), user.id)
    except ApiDenied as denied:
        return await dashboard(request, error=denied.message, status=denied.status)
    return RedirectResponse("/dashboard", status_code=303)


async def health(request: Request) -> JSONResponse:
    appliance = appliance_of(request)
    return JSONResponse(
        {
            "status": "ok",
            "transport": appliance.transport.name,
            "pending_events": appliance.transport.pending(),
            "ingest": {
                "accepted": appliance.ingest.stats.accepted,
                "filtered": appliance.ingest.stats.filtered,
                "rejected": appliance.ingest.stats.rejected,
                "overloaded": appliance.ingest.stats.overloaded,
                "rate_limited": appliance.ingest.stats.rate_limited,
            },
            "processor": {
                "flushes": appliance.processor.stats.flushes,
                "events": appliance.processor.stats.events,
                "store_errors": appliance.processor.stats.store_errors,
            },
        }
    )


_TRACKER = resource_path("tracker") / "tracker.js"


@functools.cache
def _tracker_asset() -> tuple[bytes, bytes, str]:
    """The script, gzipped once (about half the bytes on every site's page load), its ETag."""
    body = _TRACKER.read_bytes()
    return body, gzip.compress(body, 9, mtime=0), '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _accepts_gzip(request: Request) -> bool:
    for coding in request.headers.get("accept-encoding", "").split(","):
        name, _, parameters = coding.strip().partition(";")
        if name.strip().lower() == "gzip":
            return parameters.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


async def tracker_js(request: Request) -> Response:
    body, gzipped, etag = _tracker_asset()
    compress = _accepts_gzip(request)
    if compress:  # another representation: another (strong) validator
        body, etag = gzipped, etag[:-1] + '-gz"'
    headers = {
        "etag": etag,
        "cache-control": "public, max-age=86400, stale-while-revalidate=604800",
        "access-control-allow-origin": "*",
        "vary": "Accept-Encoding",
    }
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    if compress:
        headers["content-encoding"] = "gzip"
    return Response(body, media_type="text/javascript; charset=utf-8", headers=headers)


routes = [
    Route("/", home),
    Route("/login", login_page, methods=["GET"]),
    Route("/logout", logout, methods=["POST"]),
    Route("/dashboard", dashboard, methods=["GET"]),
    Route("/dashboard/sites", add_site, methods=["POST"]),
    Route("/healthz", health),
    Route("/tracker.js", tracker_js),
]
