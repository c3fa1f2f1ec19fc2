"""Slow clients (slow-loris) are cut off: a request must arrive within REQUEST_TIMEOUT_S."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx2 as httpx
import pytest

from tests.conftest import BROWSER_UA
from tests.servers import Server, free_port, server_env

pytestmark = [pytest.mark.e2e, pytest.mark.security]
TIMEOUT_S = 2


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("slow")
    env = server_env(root / "data") | {"APPLIANCE_REQUEST_TIMEOUT_S": str(TIMEOUT_S)}
    running = Server(env, free_port(), root / "server.log")
    running.start()
    yield running
    running.stop()


def closed_after(sock: socket.socket, trickle: bytes, limit_s: float) -> float | None:
    """Send `trickle` every 0.5 s; return when the server closed the connection, or None."""
    started = time.monotonic()
    sock.settimeout(0.5)
    while time.monotonic() - started < limit_s:
        try:
            if sock.recv(1024) == b"":
                return time.monotonic() - started
        except TimeoutError:
            pass
        try:
            sock.sendall(trickle)
        except (BrokenPipeError, ConnectionResetError):
            return time.monotonic() - started
    return None


def test_trickled_headers_are_cut_off(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"POST /api/events HTTP/1.1\r\nHost: x\r\n")
        elapsed = closed_after(sock, b"X-Slow: 1\r\n", limit_s=TIMEOUT_S + 5)
    assert elapsed is not None and elapsed < TIMEOUT_S + 2


def test_trickled_body_is_cut_off(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(
            b"POST /api/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n{"
        )
        elapsed = closed_after(sock, b" ", limit_s=TIMEOUT_S + 5)
    assert elapsed is not None and elapsed < TIMEOUT_S + 2


def test_a_silent_connection_is_cut_off(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.settimeout(TIMEOUT_S + 5)
        started = time.monotonic()
        assert sock.recv(1024) == b""
        assert time.monotonic() - started < TIMEOUT_S + 2


def test_normal_and_keep_alive_requests_are_unaffected(server: Server) -> None:
    with httpx.Client(base_url=server.url, headers={"user-agent": BROWSER_UA}) as client:
        for _ in range(3):
            assert client.get("/healthz").status_code == 200
            time.sleep(TIMEOUT_S / 2)
        assert client.get("/healthz").status_code == 200
