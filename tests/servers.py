"""Real servers the subprocess and browser tests start on loopback, and how they are set up.

`Server` is `appliance serve` in a subprocess; `PageServer` serves the HTML fixture pages a
browser loads, on its own port so the tracker is cross-origin as it is on a real site.
"""

from __future__ import annotations

import mimetypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import httpx2 as httpx

APPLIANCE = [sys.executable, "-m", "appliance"]


def read_response(sock: socket.socket) -> tuple[bytes, bytes]:
    """(head, body) of one whole HTTP response with a Content-Length, read from a raw socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "connection closed"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head, body


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(data_dir: Path) -> dict[str, str]:
    """This process's environment without the developer's APPLIANCE_* settings."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
    return environment | {
        "APPLIANCE_DATA_DIR": str(data_dir),
        "APPLIANCE_PLUGINS__AUTOLOAD": "false",
    }


def cli(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        [*APPLIANCE, *args], env=env, input=stdin, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


class Server:
    def __init__(self, env: dict[str, str], port: int, log: Path) -> None:
        self.env, self.port, self.log = env, port, log
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [*APPLIANCE, "serve", "--port", str(self.port)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError(f"server did not start:\n{self.log.read_text()}")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        code = self.process.wait(timeout=30)
        self.process = None
        return code


class PageServer:
    """Serves a folder of fixture pages, filling `{{domain}}`, `{{appliance}}` and `{{port}}`.

    `{{domain}}` is the host name the browser asked for, so each test can be its own site
    (`t1.test`, `t2.test`, ...); `{{appliance}}` is the appliance's URL, per host name when
    `appliance_for` names one; `{{port}}` is this server's. Paths under /files/ answer 204, so
    a download link can be clicked without leaving the page (and so does the favicon).
    """

    def __init__(self, root: Path, appliance_url: str) -> None:
        self.root = root.resolve()
        self.appliance_url = appliance_url
        self.appliance_for: dict[str, str] = {}
        pages = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the http.server name)
                status, content_type, body = pages.answer(self.path, self.headers.get("host", ""))
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(body)))
                self.send_header("cache-control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                """Quiet: pytest shows failures, not every fixture request."""

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, host: str, path: str) -> str:
        return f"http://{host}:{self.port}{path}"

    def answer(self, raw_path: str, host_header: str) -> tuple[int, str, bytes]:
        path = urlsplit(raw_path).path
        if path.startswith("/files/") or path == "/favicon.ico":
            return 204, "application/octet-stream", b""
        file = (self.root / path.lstrip("/")).resolve()
        if not file.is_file() or not file.is_relative_to(self.root):
            return 404, "text/plain", b"not found"
        if file.suffix != ".html":
            content_type = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
            return 200, content_type, file.read_bytes()
        host = host_header.rsplit(":", 1)[0]
        appliance = self.appliance_for.get(host, self.appliance_url)
        html = file.read_text()
        for name, value in (("domain", host), ("appliance", appliance), ("port", self.port)):
            html = html.replace("{{" + name + "}}", str(value))
        return 200, "text/html; charset=utf-8", html.encode()

    def __enter__(self) -> PageServer:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)
