"""uvicorn's HTTP protocol with a deadline for receiving each request (slow-loris defence),
and one socket write per response.

uvicorn times out idle keep-alive connections but not a client that trickles a request's
headers or body: one such client per connection can hold sockets forever. Here every
request - from its first byte (or the connection's opening) to its last body byte - must
arrive within `timeout_s`, or the connection is closed.

uvicorn writes a response's head and its body with two calls to the transport, and uvloop
sends each at once: two system calls and two TCP segments per response, the second one
costing as much as the whole of ingest's own work (measured: /api/events answered ~15 %
more requests/s with an empty body). `CoalescedWrites` holds what is written during one
turn of the event loop and sends it with one write at the end of that turn.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def request_timeout_protocol(timeout_s: float) -> type[asyncio.Protocol]:
    class RequestTimeoutProtocol(HttpToolsProtocol):
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self.transport = CoalescedWrites(transport, self.loop)  # type: ignore[assignment]
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


# Past this many held bytes a write goes out at once: the transport's flow control (which
# pauses a streaming response) must see big bodies, and they gain nothing from waiting.
HOLD_LIMIT = 65536


class CoalescedWrites:
    """A transport whose writes made in one turn of the event loop leave as one write.

    Everything else is the wrapped transport's. Order is kept (every write goes through the
    held list), and `close()` and `write_eof()` send what is held first; nothing waits
    longer than the turn of the loop it was written in, or past HOLD_LIMIT bytes.
    """

    __slots__ = ("_flush_scheduled", "_held", "_held_bytes", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []
        self._held_bytes = 0
        self._flush_scheduled = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        self._held.append(bytes(data))
        self._held_bytes += len(data)
        if self._held_bytes > HOLD_LIMIT:
            self.flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush_at_turn_end)

    def _flush_at_turn_end(self) -> None:
        self._flush_scheduled = False
        self.flush()

    def flush(self) -> None:
        """Send what is held now."""
        held = self._held
        if not held:
            return
        self._held, self._held_bytes = [], 0
        if self._transport.is_closing():
            return  # closed or aborted meanwhile: nothing more can be sent
        self._transport.write(held[0] if len(held) == 1 else b"".join(held))

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
