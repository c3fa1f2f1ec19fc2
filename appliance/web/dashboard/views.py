"""The site dashboard: the page, its panels (loaded and refreshed by htmx), the live
counter, CSV export and the site's settings."""

from __future__ import annotations

import csv
import io
import time
import zoneinfo
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from appliance.core.accounts import Membership
from appliance.core.filters import FilterError, check_property
from appliance.core.panels import PanelView
from appliance.core.stores import call
from appliance.web.access import MANAGE_ROLES
from appliance.web.dashboard.state import BadDashboardState, DashboardState
from appliance.web.domains import remove_site
from appliance.web.pages import error_page, render, snippet
from appliance.web.security import CSRF_FIELD, appliance_of, csrf_valid, current_user
from appliance.web.site_pages import PageDenied, site_membership

LIVE_POLL_S = 1  # a cheap query; panels reload only when it sees new data
CSV_ROWS = 1000
TIMEZONES = sorted(zoneinfo.available_timezones())


def _state(request: Request, membership: Membership) -> DashboardState:
    return DashboardState.from_request(request, membership.site.domain)


async def _dashboard(request: Request) -> tuple[Membership, DashboardState, PanelView]:
    """The membership, URL state and panel view of a dashboard request (or PageDenied,
    BadDashboardState)."""
    membership = await site_membership(request)
    state = _state(request, membership)
    return membership, state, state.view(appliance_of(request), membership)


async def site_page(request: Request) -> Response:
    try:
        membership, state, view = await _dashboard(request)
    except PageDenied as denied:
        return denied.response
    except BadDashboardState as bad:
        return error_page(request, 400, "That view does not work", str(bad))
    appliance = appliance_of(request)
    user = await current_user(request)
    memberships = await call(appliance.accounts.memberships, user.id)
    site = membership.site
    return render(
        request,
        "site.html",
        {
            "site": site,
            "state": state,
            "view": view,
            "memberships": memberships,
            "panels": appliance.panels,
            "current_visitors": await appliance.query.current_visitors(site.id, time.time()),
            "live_url": await _live_url(request, site.domain, site.id),
            "live_poll_s": LIVE_POLL_S,
            "error": "",
        },
    )


async def panel_fragment(request: Request) -> Response:
    try:
        _, state, view = await _dashboard(request)
    except PageDenied as denied:
        return denied.response
    except BadDashboardState as bad:
        return Response(str(bad), status_code=400)
    appliance = appliance_of(request)
    panel = next((p for p in appliance.panels if p.id == request.path_params["panel"]), None)
    if panel is None:
        return Response("No such panel.", status_code=404)
    context = await panel.data(view)
    return render(
        request,
        panel.template,
        {"panel": panel, "view": view, "state": state, "filter_url": state.with_filter} | context,
    )


async def _live_url(request: Request, domain: str, site_id: int) -> str:
    latest = await appliance_of(request).query.latest_event_time(site_id)
    return f"/sites/{domain}/live?seen={latest or 0}"


async def live_counter(request: Request) -> Response:
    """The live counter; tells the page (HX-Trigger) to refresh its panels on new data."""
    try:
        membership = await site_membership(request)
    except PageDenied as denied:
        return denied.response
    site = membership.site
    query = appliance_of(request).query
    visitors = await query.current_visitors(site.id, time.time())
    latest = await query.latest_event_time(site.id) or 0
    seen = request.query_params.get("seen", "0")
    headers = {"HX-Trigger": "appliance:data"} if str(latest) != seen else {}
    url = f"/sites/{site.domain}/live?seen={latest}"
    response = render(
        request,
        "live_element.html",
        {"live_url": url, "live_poll_s": LIVE_POLL_S, "current_visitors": visitors},
    )
    response.headers.update(headers)
    return response


async def export_csv(request: Request) -> Response:
    try:
        membership, state, view = await _dashboard(request)
        prop = check_property(request.query_params.get("property", ""))
    except PageDenied as denied:
        return denied.response
    except (BadDashboardState, FilterError) as bad:
        return Response(str(bad), status_code=400)
    rows = await view.query.breakdown(view.site.id, view.time_range, prop, CSV_ROWS, view.filters)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([prop, "visitors", "pageviews", "events"])
    for row in rows:
        # A leading =, +, - or @ would run as a formula in a spreadsheet.
        value = f"'{row.value}" if row.value[:1] in ("=", "+", "-", "@") else row.value
        writer.writerow([value, row.visitors, row.pageviews, row.events])
    name = f"{membership.site.domain}-{prop}-{state.period}.csv"
    return Response(
        buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{name}"'},
    )


async def settings_page(
    request: Request, message: str = "", error: str = "", status: int = 200
) -> Response:
    try:
        membership = await site_membership(request)
    except PageDenied as denied:
        return denied.response
    site = membership.site
    context: dict[str, Any] = {
        "site": site,
        "snippet": snippet(request, site.domain),
        "timezones": TIMEZONES,
        "can_manage": membership.role in MANAGE_ROLES,
        "message": message,
        "error": error,
    }
    return render(request, "site_settings.html", context, status=status)


async def _managed_form(request: Request) -> tuple[Membership, Any]:
    membership = await site_membership(request, manage=True)
    form = await request.form()
    if not csrf_valid(request, str(form.get(CSRF_FIELD, ""))):
        raise PageDenied(Response("Invalid or missing CSRF token.", status_code=403))
    return membership, form


async def set_timezone(request: Request) -> Response:
    try:
        membership, form = await _managed_form(request)
    except PageDenied as denied:
        return denied.response
    timezone = str(form.get("timezone", ""))
    if timezone not in TIMEZONES:
        return await settings_page(
            request, error=f"timezone: {timezone!r} is not a known time zone", status=400
        )
    await call(appliance_of(request).accounts.set_site_timezone, membership.site.id, timezone)
    await appliance_of(request).sites.refresh(force=True)
    return await settings_page(request, message=f"Time zone set to {timezone}.")


async def delete_site(request: Request) -> Response:
    try:
        membership, form = await _managed_form(request)
    except PageDenied as denied:
        return denied.response
    site = membership.site
    if str(form.get("confirm", "")).strip().lower() != site.domain:
        return await settings_page(request, error="Type the domain exactly to confirm.", status=400)
    await remove_site(appliance_of(request), site.id)
    return RedirectResponse("/dashboard", status_code=303)


routes = [
    Route("/sites/{domain}", site_page),
    Route("/sites/{domain}/panels/{panel}", panel_fragment),
    Route("/sites/{domain}/live", live_counter),
    Route("/sites/{domain}/export.csv", export_csv),
    Route("/sites/{domain}/settings", settings_page, methods=["GET"]),
    Route("/sites/{domain}/settings/timezone", set_timezone, methods=["POST"]),
    Route("/sites/{domain}/delete", delete_site, methods=["POST"]),
]
