"""GET /api/openapi.json: the public API described for client authors and fuzzers.

The event schema is generated from the msgspec types that validate requests, so the
description cannot drift from what /api/events accepts.
"""

from __future__ import annotations

import functools
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from appliance import __version__
from appliance.core.event import IncomingEvent
from appliance.core.filters import PROPERTIES
from appliance.core.periods import INTERVALS, PERIODS

REF = "#/components/schemas/{name}"


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": REF.format(name="Error")}}},
    }


def _stats_operation(summary: str, extra: list[dict[str, Any]]) -> dict[str, Any]:
    common = [
        {"name": "domain", "in": "query", "required": True, "schema": {"type": "string"}},
        {"name": "period", "in": "query", "schema": {"type": "string", "enum": list(PERIODS)}},
        {"name": "from", "in": "query", "schema": {"type": "string", "format": "date-time"}},
        {"name": "to", "in": "query", "schema": {"type": "string", "format": "date-time"}},
        {"name": "filters", "in": "query", "schema": {"type": "string"}},
    ]
    return {
        "get": {
            "summary": summary,
            "security": [{"apiKey": []}],
            "parameters": common + extra,
            "responses": {
                "200": {"description": "The figures", "content": {"application/json": {}}},
                "400": _error("A parameter is unusable; the message names it"),
                "401": _error("No session and no API key"),
                "404": _error("No such site for this account"),
            },
        }
    }


@functools.cache
def description() -> dict[str, Any]:
    (event_schema,), components = msgspec.json.schema_components((IncomingEvent,), ref_template=REF)
    components["Error"] = {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string"}},
    }
    batch = {"type": "array", "minItems": 1, "maxItems": 50, "items": event_schema}
    body_schema = {"oneOf": [event_schema, batch]}
    limit = {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Appliance analytics", "version": __version__},
        "components": {
            "schemas": components,
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
        },
        "paths": {
            "/api/events": {
                "post": {
                    "summary": "Record page views and custom events (what tracker.js sends)",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": body_schema},
                            "text/plain": {"schema": body_schema},
                        },
                    },
                    "responses": {
                        "202": {"description": "Taken; it will be counted once"},
                        "400": _error("Invalid event; the message names the field"),
                        "404": _error("The domain is not a registered site"),
                        "413": _error("The body is larger than the limit"),
                        "415": _error("Not JSON or text/plain"),
                        "429": _error("Rate limited; see Retry-After"),
                        "503": _error("Busy or the transport is away; see Retry-After"),
                    },
                }
            },
            "/api/analytics/kpis": _stats_operation("Visitors, pageviews, visits...", []),
            "/api/analytics/timeseries": _stats_operation(
                "Gap-free time series",
                [
                    {
                        "name": "interval",
                        "in": "query",
                        "schema": {"type": "string", "enum": list(INTERVALS)},
                    }
                ],  # fmt: skip
            ),
            "/api/analytics/top-pages": _stats_operation("Most viewed pages", [limit]),
            "/api/analytics/breakdown": _stats_operation(
                "Visitors and pageviews grouped by a property",
                [
                    {
                        "name": "property",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string", "enum": list(PROPERTIES)},
                    },
                    limit,
                ],  # fmt: skip
            ),
        },
    }


async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(description())


routes = [Route("/api/openapi.json", openapi)]
