"""Pytest fixtures for plugin authors: a real appliance on loopback, a client, events.

Installing ``appliance`` registers this module as a pytest plugin (entry point ``pytest11``),
so a plugin's test suite gets these fixtures without importing anything:

- ``appliance_settings``: override it to configure the server (``{"webhook.url": ...}``);
- ``appliance_server``: ``appliance serve`` in a subprocess on a free loopback port, with a
  temp data dir, plugin autoloading on, one user, one site and an API key;
- ``appliance_client``: an HTTP client logged in to that server (cookies and CSRF handled);
- ``appliance_events``: send events and wait until the stats API counts them;
- ``appliance_http_receiver``: a loopback HTTP server recording what it receives, to point
  a sink at.

Every name starts with ``appliance_`` so it cannot clash with a suite's own fixtures. Only
the standard library is used (no HTTP client package), so the fixtures work wherever
``appliance`` and ``pytest`` are installed.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

EMAIL = "owner@example.com"
PASSWORD = "correct horse battery staple"  # noqa: S105 (a throwaway test account)
DOMAIN = "example.com"
# A browser's user agent: the bot filter drops "Python-urllib" and friends, as it should.
BROWSER_UA = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def settings_env(settings: Mapping[str, Any]) -> dict[str, str]:
    """``{"webhook.url": "http://x"}`` -> ``{"APPLIANCE_WEBHOOK__URL": "@str http://x"}``."""
    env = {}
    for key, value in settings.items():
        if isinstance(value, Mapping):
            nested = settings_env({f"{key}.{sub}": sub_value for sub, sub_value in value.items()})
            env.update(nested)
            continue
        name = "APPLIANCE_" + key.upper().replace(".", "__")
        if isinstance(value, str):
            env[name] = "@str " + value  # never let Dynaconf turn "123" into a number
        elif isinstance(value, bool):
            env[name] = "true" if value else "false"
        elif value is None:
            env[name] = "@none"
        else:
            env[name] = json.dumps(value)
    return env


# --- a small HTTP client ----------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a 3xx comes back as the reply, so tests can assert it


class ApplianceClient:
    """Keeps cookies, never follows redirects, and fills the CSRF token into writes."""

    def __init__(self, base_url: str, headers: Mapping[str, str] | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = {"user-agent": BROWSER_UA} | dict(headers or {})
        self.cookies = http.cookiejar.CookieJar()
        self._opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.cookies),
            urllib.request.ProxyHandler({}),  # loopback only: never through a proxy
            _NoRedirects(),
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 10,
    ) -> Reply:
        data = None
        all_headers = self.headers | dict(headers or {})
        if json_body is not None:
            data = json.dumps(json_body).encode()
            all_headers["content-type"] = "application/json"
        elif form is not None:
            data = urllib.parse.urlencode(form).encode()
            all_headers["content-type"] = "application/x-www-form-urlencoded"
        url = self.base_url + path
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"not an HTTP URL: {url}")
        request = urllib.request.Request(url, data, all_headers, method=method)  # noqa: S310
        try:
            with self._opener.open(request, timeout=timeout_s) as response:
                return Reply(response.status, dict(response.headers), response.read())
        except urllib.error.HTTPError as error:
            with error:
                return Reply(error.code, dict(error.headers), error.read())

    def get(self, path: str, **kwargs: Any) -> Reply:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Reply:
        return self.request("POST", path, **kwargs)

    def csrf_token(self, page: str = "/dashboard") -> str:
        """The token a form on `page` carries (the JSON API takes it as X-CSRF-Token)."""
        text = self.get(page).text
        marker = 'name="csrf_token" value="'
        start = text.index(marker) + len(marker)
        return text[start : text.index('"', start)]

    def login(self, email: str = EMAIL, password: str = PASSWORD) -> Reply:
        token = self.csrf_token("/login")
        form = {"csrf_token": token, "email": email, "password": password}
        return self.post("/login/password", form=form)


# --- a running appliance ----------------------------------------------------------------


class ApplianceServer:
    """``appliance serve`` in a subprocess; `stop()` is graceful (SIGTERM flushes)."""

    def __init__(self, directory: Path, settings: Mapping[str, Any]) -> None:
        self.directory = directory
        self.data_dir = directory / "data"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = directory / "appliance.log"
        self.email, self.password, self.domain = EMAIL, PASSWORD, DOMAIN
        self.api_key = ""
        base = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
        self.env = base | settings_env(
            {"data_dir": str(self.data_dir), "plugins.autoload": True, **settings}
        )
        self.process: subprocess.Popen[bytes] | None = None

    def cli(self, *args: str, stdin: str | None = None) -> str:
        """Run ``appliance ARGS`` against this server's settings and data; returns stdout."""
        result = subprocess.run(
            [sys.executable, "-m", "appliance", *args],
            env=self.env,
            cwd=self.directory,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if result.returncode != 0:
            raise AssertionError(f"appliance {' '.join(args)} failed:\n{result.stderr}")
        return result.stdout

    def provision(self) -> None:
        """One user owning one site, and an API key for the stats API."""
        self.cli("user", "add", self.email, "--password-stdin", stdin=self.password + "\n")
        self.cli("site", "add", self.domain, "--owner", self.email)
        self.api_key = self.cli("token", "create", self.email).strip().splitlines()[-1]

    def start(self, timeout_s: float = 20) -> None:
        command = [sys.executable, "-m", "appliance", "serve", "--host", "127.0.0.1"]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*command, "--port", str(self.port)],
                env=self.env,
                cwd=self.directory,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        probe = ApplianceClient(self.url)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if probe.get("/healthz", timeout_s=1).status == 200:
                    return
            except OSError:
                time.sleep(0.05)
        self.stop(signal.SIGKILL)
        raise AssertionError(f"appliance did not start:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        """Stop the server (gracefully by default) and return its exit status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self.process = None
        return code

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def client(self) -> ApplianceClient:
        return ApplianceClient(self.url)

    def api(self) -> ApplianceClient:
        """A client authenticated by the API key (no cookies, no CSRF needed)."""
        return ApplianceClient(self.url, {"authorization": f"Bearer {self.api_key}"})


def start_appliance(directory: Path, settings: Mapping[str, Any] | None = None) -> ApplianceServer:
    """Provision and start a server in `directory`; the caller stops it."""
    directory.mkdir(parents=True, exist_ok=True)
    server = ApplianceServer(directory, settings or {})
    server.provision()
    server.start()
    return server


# --- events -----------------------------------------------------------------------------


class EventSender:
    """POST events like tracker.js does, then wait until the stats API counts them."""

    def __init__(self, server: ApplianceServer) -> None:
        self.server = server
        self.client = ApplianceClient(server.url)

    def send(self, *events: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> int:
        """Send events (the domain defaults to the server's site); returns how many were kept."""
        body = [{"domain": self.server.domain} | dict(event) for event in events]
        reply = self.client.post("/api/events", json_body=body, headers=headers)
        if reply.status != 202:
            raise AssertionError(f"POST /api/events answered {reply.status}: {reply.text}")
        return int(reply.json()["accepted"])

    def counted(self, period: str = "today") -> int:
        """Pageviews plus custom events the stats API reports for the server's site."""
        path = f"/api/analytics/kpis?domain={self.server.domain}&period={period}"
        kpis = self.server.api().get(path).json()
        return int(kpis["pageviews"]) + int(kpis["events"])

    def wait_until_counted(self, total: int, period: str = "today", timeout_s: float = 5) -> None:
        deadline = time.monotonic() + timeout_s
        while (seen := self.counted(period)) < total:
            if time.monotonic() > deadline:
                raise AssertionError(f"{seen} of {total} events visible after {timeout_s} s")
            time.sleep(0.02)

    def send_and_wait(
        self, *events: Mapping[str, Any], headers: Mapping[str, str] | None = None
    ) -> int:
        """Send events and return once the stats API counts every one that was kept."""
        before = self.counted()
        accepted = self.send(*events, headers=headers)
        self.wait_until_counted(before + accepted)
        return accepted


# --- a loopback HTTP receiver -------------------------------------------------------------


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HttpReceiver:
    """Records every request; answers 200, or the statuses queued with `answer_next`."""

    url: str = ""
    requests: list[Received] = field(default_factory=list)
    _statuses: list[int] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def answer_next(self, *statuses: int) -> None:
        with self._lock:
            self._statuses.extend(statuses)

    def _record(self, request: Received) -> int:
        with self._lock:
            self.requests.append(request)
            return self._statuses.pop(0) if self._statuses else 200

    def wait_for(self, count: int, timeout_s: float = 5) -> list[Received]:
        """Wait until at least `count` requests arrived; return all of them."""
        deadline = time.monotonic() + timeout_s
        while len(self.requests) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.requests)} of {count} requests in {timeout_s} s")
            time.sleep(0.01)
        with self._lock:
            return list(self.requests)


def _handler_for(receiver: HttpReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length)
            headers = {name.lower(): value for name, value in self.headers.items()}
            status = receiver._record(Received(self.command, self.path, headers, body))
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        do_GET = do_POST = do_PUT = _handle  # noqa: N815 (http.server's naming)

        def log_message(self, format: str, *args: Any) -> None:
            return None  # keep test output quiet

    return Handler


@pytest.fixture
def appliance_http_receiver() -> Iterator[HttpReceiver]:
    """A loopback HTTP server that records requests (point a sink's URL at ``.url``)."""
    receiver = HttpReceiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(receiver))
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="http-receiver", daemon=True
    )
    thread.start()
    yield receiver
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


# --- fixtures ---------------------------------------------------------------------------


@pytest.fixture
def appliance_settings() -> dict[str, Any]:
    """Settings for `appliance_server`, dotted keys to values; override it in your conftest."""
    return {}


@pytest.fixture
def appliance_server(
    tmp_path_factory: pytest.TempPathFactory, appliance_settings: dict[str, Any]
) -> Iterator[ApplianceServer]:
    """A running appliance with your installed plugin loaded; stopped after the test."""
    server = start_appliance(tmp_path_factory.mktemp("appliance"), appliance_settings)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def appliance_client(appliance_server: ApplianceServer) -> ApplianceClient:
    """A client logged in to `appliance_server` as the owner of its site."""
    client = appliance_server.client()
    reply = client.login(appliance_server.email, appliance_server.password)
    if reply.status != 303:
        raise AssertionError(f"login answered {reply.status}: {reply.text[:500]}")
    return client


@pytest.fixture
def appliance_events(appliance_server: ApplianceServer) -> EventSender:
    """Send events to `appliance_server` and wait until they are counted."""
    return EventSender(appliance_server)


__all__ = [
    "ApplianceClient",
    "ApplianceServer",
    "EventSender",
    "HttpReceiver",
    "Received",
    "Reply",
    "start_appliance",
    "settings_env",
    "free_port",
]
