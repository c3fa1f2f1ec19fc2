"""uvicorn's HTTP protocol with a deadline for receiving each request (slow-loris defence).

uvicorn times out idle keep-alive connections but not a client that trickles a request's
headers or body: one such client per connection can hold sockets forever. Here every
request - from its first byte (or the connection's opening) to its last body byte - must
arrive within `timeout_s`, or the connection is closed.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def request_timeout_protocol(timeout_s: float) -> type[asyncio.Protocol]:
    class RequestTimeoutProtocol(HttpToolsProtocol):
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm()

        def on_message_complete(self) -> None:
            self._disarm()
            super().on_message_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(timeout_s, self._expire)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expire(self) -> None:
            self._deadline = None
            if not self.transport.is_closing():
                self.transport.close()

    return RequestTimeoutProtocol
