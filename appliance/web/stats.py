"""The stats API (the seed's /api/analytics/*), for the dashboard and for API keys."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from appliance.core.filters import Filter, FilterError, check_property, parse_filters
from appliance.core.periods import PeriodError, TimeRange, parse_range
from appliance.web.access import ApiDenied, api_user, site_access
from appliance.web.security import appliance_of

MAX_LIMIT = 1000


def iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


async def _site_range_filters(request: Request) -> tuple[int, TimeRange, tuple[Filter, ...]]:
    user = await api_user(request)
    params = request.query_params
    membership = await site_access(request, user, params.get("domain"))
    try:
        time_range = parse_range(
            params.get("period"),
            params.get("from"),
            params.get("to"),
            params.get("interval"),
            tz=membership.site.timezone,
        )
        filters = parse_filters(params.get("filters"))
    except (PeriodError, FilterError) as error:
        raise ApiDenied(400, str(error)) from None
    return membership.site.id, time_range, filters


def _limit(request: Request, default: int = 10) -> int:
    raw_limit = request.query_params.get("limit", str(default))
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
        raise ApiDenied(400, f"limit: must be a whole number from 1 to {MAX_LIMIT}")
    return int(raw_limit)


def _range_json(time_range: TimeRange) -> dict[str, str]:
    return {"from": iso(time_range.start), "to": iso(time_range.end)}


async def _realtime_json(request: Request) -> dict[str, str]:
    """How the newest window is served: "live", "degraded" (the real-time store is away or
    catching up; the persistent store answered) or "off" (no real-time store)."""
    return {"realtime": await appliance_of(request).query.realtime_status()}


async def kpis(request: Request) -> JSONResponse:
    site_id, time_range, filters = await _site_range_filters(request)
    result = await appliance_of(request).query.kpis(site_id, time_range, filters)
    return JSONResponse(
        dataclasses.asdict(result) | _range_json(time_range) | await _realtime_json(request)
    )


async def timeseries(request: Request) -> JSONResponse:
    site_id, time_range, filters = await _site_range_filters(request)
    points = await appliance_of(request).query.timeseries(site_id, time_range, filters)
    return JSONResponse(
        {
            "interval": time_range.interval,
            "points": [
                {"t": iso(p.t), "pageviews": p.pageviews, "visitors": p.visitors} for p in points
            ],
        }
        | _range_json(time_range)
        | await _realtime_json(request)
    )


async def top_pages(request: Request) -> JSONResponse:
    site_id, time_range, filters = await _site_range_filters(request)
    limit = _limit(request)
    rows = await appliance_of(request).query.top_pages(site_id, time_range, limit, filters)
    pages = [dataclasses.asdict(row) for row in rows]
    return JSONResponse({"pages": pages} | _range_json(time_range) | await _realtime_json(request))


async def breakdown(request: Request) -> JSONResponse:
    site_id, time_range, filters = await _site_range_filters(request)
    try:
        prop = check_property(request.query_params.get("property", ""))
    except FilterError as error:
        raise ApiDenied(400, str(error)) from None
    limit = _limit(request)
    query = appliance_of(request).query
    rows = await query.breakdown(site_id, time_range, prop, limit, filters)
    results = [dataclasses.asdict(row) for row in rows]
    return JSONResponse(
        {"property": prop, "results": results}
        | _range_json(time_range)
        | await _realtime_json(request)
    )


routes = [
    Route("/api/analytics/kpis", kpis),
    Route("/api/analytics/timeseries", timeseries),
    Route("/api/analytics/top-pages", top_pages),
    Route("/api/analytics/breakdown", breakdown),
]
