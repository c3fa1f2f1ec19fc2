"""POST /api/events: what tracker.js calls. Validates, enriches, publishes, answers 202.

It is the one hot path (every page view of every tracked site), so it is plain ASGI and
answers ahead of Starlette's routing, exception and browser-security middleware: they cost
a third of its CPU and give it nothing (it renders no page and sets no cookie). It still
runs inside Starlette's ServerErrorMiddleware (an exception is a logged 500) and records
every answer in the same request metrics as the other routes.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
from starlette.datastructures import State
from starlette.types import ASGIApp, Receive, Scope, Send

from appliance.core.event import EventDecodeError
from appliance.core.ingest import IngestPipeline, UnknownDomain
from appliance.core.ratelimit import RateLimited
from appliance.core.transport import TransportFull, TransportUnavailable
from appliance.web.metrics import INGEST_ROUTE, RequestRecorder
from appliance.web.security import forwarded_client, route_path

# sendBeacon sends text/plain; fetch from the tracker sends JSON.
ACCEPTED_TYPES = frozenset({"application/json", "text/plain", ""})
ALLOWED_METHODS = "POST, OPTIONS"
ALLOW = (b"allow", ALLOWED_METHODS.encode())

Headers = list[tuple[bytes, bytes]]
JSON = (b"content-type", b"application/json")
ANY_ORIGIN: Headers = [(b"access-control-allow-origin", b"*")]
VARY_ORIGIN = (b"vary", b"Origin")
PREFLIGHT: Headers = [
    (b"access-control-allow-methods", ALLOWED_METHODS.encode()),
    (b"access-control-allow-headers", b"Content-Type"),
    (b"access-control-max-age", b"86400"),
]


class BodyTooLarge(Exception):
    pass


class ClientGone(Exception):
    pass


class RequestHeaders:
    """The few request headers ingest reads, found in one pass over the raw list."""

    __slots__ = ("content_length", "content_type", "forwarded_for", "origin", "user_agent")

    def __init__(self, raw: Headers) -> None:
        self.content_type = self.user_agent = self.origin = self.forwarded_for = ""
        self.content_length: str | None = None
        for name, value in raw:
            if name == b"content-type":
                self.content_type = value.decode("latin-1")
            elif name == b"content-length":
                self.content_length = value.decode("latin-1")
            elif name == b"user-agent":
                self.user_agent = value.decode("latin-1")
            elif name == b"origin":
                self.origin = value.decode("latin-1")
            elif name == b"x-forwarded-for":  # several are one comma-separated list
                sep = ", " if self.forwarded_for else ""
                self.forwarded_for += sep + value.decode("latin-1")

    @property
    def media_type(self) -> str:
        return self.content_type.split(";", 1)[0].strip().lower()


async def read_limited(receive: Receive, declared: str | None, limit: int) -> bytes:
    """The whole body, refusing more than `limit` bytes before reading them when declared."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def error_body(message: str) -> bytes:
    return msgspec.json.encode({"error": message})


class EventsEndpoint:
    """POST and OPTIONS /api/events as plain ASGI; `state` is the app's (tests change it)."""

    def __init__(self, ingest: IngestPipeline, state: State, recorder: RequestRecorder) -> None:
        self.ingest = ingest
        self.state = state
        self.recorder = recorder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        method = scope["method"]
        status = 500  # what the client gets when something here raises (the app's handler)
        try:
            headers = RequestHeaders(scope["headers"])
            cors = self._cors(headers.origin)
            if method == "POST":
                status, extra, body = await self._post(scope, receive, headers)
            elif method == "OPTIONS":
                status, extra, body = 204, PREFLIGHT, b""
            else:
                status, extra, body = 405, [ALLOW], error_body("not allowed")
            response = [*cors, *extra]
            if status != 204:  # a 204 has no content, not even a length
                response.append((b"content-length", b"%d" % len(body)))
            if body:
                response.append(JSON)
            await send({"type": "http.response.start", "status": status, "headers": response})
            await send({"type": "http.response.body", "body": body})
        finally:
            self.recorder.record(INGEST_ROUTE, method, status, time.perf_counter() - started)

    def _cors(self, origin: str) -> Headers:
        allowed = self.state.cors_origins
        if "*" in allowed:
            return ANY_ORIGIN
        if origin and origin in allowed:
            return [(b"access-control-allow-origin", origin.encode("latin-1")), VARY_ORIGIN]
        return [VARY_ORIGIN]

    def _client_ip(self, scope: Scope, headers: RequestHeaders) -> str:
        client = scope.get("client")
        peer = client[0] if client else ""
        trusted = self.state.trusted_proxies
        if peer not in trusted:
            return peer
        return forwarded_client(peer, headers.forwarded_for, trusted)

    async def _post(
        self, scope: Scope, receive: Receive, headers: RequestHeaders
    ) -> tuple[int, Headers, bytes]:
        """(status, extra headers, body) of the answer to one POST."""
        if headers.media_type not in ACCEPTED_TYPES:
            return 415, [], error_body("content-type: send application/json or text/plain")
        limit = self.state.max_body_bytes
        try:
            body = await read_limited(receive, headers.content_length, limit)
        except BodyTooLarge:
            return 413, [], error_body(f"body: larger than {limit} bytes")
        except ClientGone:
            return 400, [], b""
        ingest = self.ingest
        try:
            result = await ingest.accept(body, self._client_ip(scope, headers), headers.user_agent)
        except EventDecodeError as error:
            ingest.stats.rejected += 1
            return 400, [], error_body(str(error))
        except UnknownDomain as error:
            ingest.stats.rejected += 1
            return 404, [], error_body(str(error))
        except RateLimited as error:
            return 429, [retry_after(error.retry_after_s)], error_body(str(error))
        except TransportFull as error:
            ingest.stats.overloaded += 1
            busy = "busy: the event queue is full, retry later"
            return 503, [retry_after(error.retry_after_s)], error_body(busy)
        except TransportUnavailable as error:
            return 503, [retry_after(5)], error_body(f"{error}; retry later")
        answer = b'{"accepted":%d,"filtered":%d}' % (result.accepted, result.filtered)
        return 202, [], answer


def retry_after(seconds: Any) -> tuple[bytes, bytes]:
    return (b"retry-after", str(seconds).encode())


class IngestLane:
    """Sends /api/events to its endpoint and everything else on through the app."""

    def __init__(self, app: ASGIApp, endpoint: EventsEndpoint) -> None:
        self.app = app
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and route_path(scope) == INGEST_ROUTE:
            await self.endpoint(scope, receive, send)
        else:
            await self.app(scope, receive, send)
