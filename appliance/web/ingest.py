"""POST /api/events: what tracker.js calls. Validates, enriches, publishes, answers 202."""

from __future__ import annotations

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from appliance.core.event import EventDecodeError
from appliance.core.ingest import UnknownDomain
from appliance.core.ratelimit import RateLimited
from appliance.core.transport import TransportFull, TransportUnavailable
from appliance.web.errors import json_error
from appliance.web.security import appliance_of, client_ip

# sendBeacon sends text/plain; fetch from the tracker sends JSON.
ACCEPTED_TYPES = ("application/json", "text/plain", "")


class BodyTooLarge(Exception):
    pass


async def read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit():
        if int(declared) > limit:
            raise BodyTooLarge
        return await request.body()  # the server never reads past Content-Length
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge
    return bytes(body)


ANY_ORIGIN = {"access-control-allow-origin": "*"}


def cors_headers(request: Request) -> dict[str, str]:
    allowed = request.app.state.cors_origins
    if "*" in allowed:
        return ANY_ORIGIN
    origin = request.headers.get("origin")
    if origin and origin in allowed:
        return {"access-control-allow-origin": origin, "vary": "Origin"}
    return {"vary": "Origin"}


async def preflight(request: Request) -> Response:
    headers = cors_headers(request) | {
        "access-control-allow-methods": "POST, OPTIONS",
        "access-control-allow-headers": "Content-Type",
        "access-control-max-age": "86400",
    }
    return Response(status_code=204, headers=headers)


async def post_events(request: Request) -> Response:
    appliance = appliance_of(request)
    headers = cors_headers(request)
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type not in ACCEPTED_TYPES:
        return json_error(415, "content-type: send application/json or text/plain", headers)
    limit = request.app.state.max_body_bytes
    try:
        body = await read_limited(request, limit)
    except BodyTooLarge:
        return json_error(413, f"body: larger than {limit} bytes", headers)
    except ClientDisconnect:
        return Response(status_code=400)
    ip = client_ip(request, request.app.state.trusted_proxies)
    user_agent = request.headers.get("user-agent", "")
    ingest = appliance.ingest
    try:
        result = await ingest.accept(body, ip, user_agent)
    except EventDecodeError as error:
        ingest.stats.rejected += 1
        return json_error(400, str(error), headers)
    except UnknownDomain as error:
        ingest.stats.rejected += 1
        return json_error(404, str(error), headers)
    except RateLimited as error:
        return json_error(429, str(error), headers | {"retry-after": str(error.retry_after_s)})
    except TransportFull as error:
        ingest.stats.overloaded += 1
        return json_error(
            503,
            "busy: the event queue is full, retry later",
            headers | {"retry-after": str(error.retry_after_s)},
        )
    except TransportUnavailable as error:
        return json_error(503, f"{error}; retry later", headers | {"retry-after": "5"})
    body = b'{"accepted":%d,"filtered":%d}' % (result.accepted, result.filtered)
    return Response(body, status_code=202, headers=headers, media_type="application/json")


routes = [
    Route("/api/events", post_events, methods=["POST"]),
    Route("/api/events", preflight, methods=["OPTIONS"]),
]
