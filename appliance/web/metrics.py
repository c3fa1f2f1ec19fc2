"""Request metrics and the access log (one ASGI middleware), and `GET /metrics`.

The middleware is plain ASGI and does per request only what it must: two clock reads, one
histogram observation under the route's template (`/invitations/{token}`, never the path,
so neither a token nor a visitor's URL reaches a label or a log line), and for a refused
`/api/events` one counter. `/metrics` on the main port needs `METRICS.TOKEN` as a bearer
token; without one it is not served there (see metrics_server.py for a separate port).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from appliance.metrics import CONTENT_TYPE, REJECTION_REASONS, Metrics

access_log = logging.getLogger("appliance.access")

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
INGEST_ROUTE = "/api/events"


class RequestRecorder:
    """Records one answered request: its latency, a refusal of events, the access log line.

    Shared by the middleware (every route) and the ingest endpoint, which answers ahead of
    the middleware stack but must show up in the same metrics.
    """

    def __init__(self, metrics: Metrics, log_access: bool) -> None:
        self.metrics = metrics
        self.log_access = log_access
        self._latency: dict[tuple[str, str], Any] = {}  # label children, made once each
        self._rejected = {
            status: metrics.events_rejected.labels(reason)
            for status, reason in REJECTION_REASONS.items()
        }

    def record(self, route: str, method: str, status: int, seconds: float) -> None:
        method = method if method in METHODS else "other"
        key = (route, method)
        child = self._latency.get(key)
        if child is None:
            child = self._latency[key] = self.metrics.request_seconds.labels(route, method)
        child.observe(seconds)
        if status >= 400 and route == INGEST_ROUTE and method == "POST":
            rejected = self._rejected.get(status)
            if rejected is not None:
                rejected.inc()
        if self.log_access:
            access_log.info(
                "%s %s %d %.1f ms",
                method,
                route,
                status,
                seconds * 1000,
                extra={"method": method, "route": route, "status": status,
                       "duration_ms": round(seconds * 1000, 2)},
            )  # fmt: skip


class RequestMetricsMiddleware:
    def __init__(self, app: ASGIApp, recorder: RequestRecorder) -> None:
        self.app = app
        self.recorder = recorder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets when the app raises before answering

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.recorder.record(route, scope["method"], status, time.perf_counter() - started)


def bearer_matches(request: Request, token: str) -> bool:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        credentials.strip().encode(), token.encode()
    )


async def serve_metrics(request: Request, metrics: Metrics, token: str) -> Response:
    """The exposition, when the token matches (or none is required on this listener)."""
    if token and not bearer_matches(request, token):
        return Response(
            "metrics: send Authorization: Bearer <METRICS.TOKEN>\n",
            status_code=401,
            headers={"www-authenticate": 'Bearer realm="metrics"'},
            media_type="text/plain",
        )
    body = await asyncio.to_thread(metrics.exposition)
    return Response(body, media_type=CONTENT_TYPE, headers={"cache-control": "no-store"})


async def metrics_endpoint(request: Request) -> Response:
    token = str(request.app.state.appliance.settings.metrics.token or "")
    if not token:  # never open on the public port
        return Response("Not Found", status_code=404, media_type="text/plain")
    return await serve_metrics(request, request.app.state.metrics, token)


routes = [Route("/metrics", metrics_endpoint, methods=["GET"])]
