"""Each response leaves `serve` in one socket write (head and body together), intact."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.testing import ApplianceServer, start_appliance
from tests.servers import read_response

pytestmark = pytest.mark.e2e
REQUESTS = 200


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApplianceServer]:
    # No access log: its line per request is a write of its own.
    running = start_appliance(tmp_path_factory.mktemp("writes"), {"log_access": False})
    yield running
    running.stop()


def write_calls(pid: int) -> int:
    """The process's write system calls so far (uvloop sends with write/writev)."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("syscw:"):
            return int(line.split()[1])
    raise AssertionError("no syscw in /proc/PID/io")


def test_a_response_is_one_write_and_arrives_whole(server: ApplianceServer) -> None:
    """Without coalescing, uvicorn writes the head and the body separately: 2 per response."""
    assert server.process is not None
    event = json.dumps({"domain": "unknown.example", "path": "/"}).encode()
    request = (
        b"POST /api/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(event), event)
    )
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.settimeout(10)
        sock.sendall(request)
        read_response(sock)  # the connection is open and the route warm
        before = write_calls(server.process.pid)
        for _ in range(REQUESTS):
            sock.sendall(request)
            head, body = read_response(sock)
            assert head.startswith(b"HTTP/1.1 404 ")
            assert "unknown.example" in json.loads(body)["error"]
        writes = write_calls(server.process.pid) - before
    assert writes <= REQUESTS * 1.2, f"{writes} writes for {REQUESTS} responses"


def test_a_closing_response_is_sent_before_the_close(server: ApplianceServer) -> None:
    """`Connection: close` makes uvicorn close right after the body: the held bytes go first."""
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.settimeout(10)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert json.loads(body)
