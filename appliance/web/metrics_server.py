"""A listener of its own for /metrics, /healthz and /readyz (`metrics.port`).

`appliance process` has no web app, so this is where Prometheus scrapes a processor and
where a container's health check asks whether it is alive. `serve` opens it too when the
port is set, so metrics can stay on a private interface while the app faces the internet.
It runs uvicorn in a thread with its own event loop: a slow scrape (plugins asking a broker)
never delays ingest, and the listener stops with the appliance.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from appliance.core.settings import SettingsError
from appliance.doctor import collect_checks
from appliance.metrics import Metrics
from appliance.web import pages, readiness
from appliance.web.metrics import serve_metrics

log = logging.getLogger(__name__)

START_TIMEOUT_S = 10.0
THREAD_NAME = "metrics"


class QuietMetricsThread(logging.Filter):
    """uvicorn logs through the same loggers for both servers: keep only the problems of
    this one, so "Uvicorn running on ..." names the app's address alone."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.threadName != THREAD_NAME or record.levelno >= logging.WARNING


class MetricsServer:
    def __init__(self, appliance: Any, metrics: Metrics, ready: readiness.Readiness) -> None:
        settings = appliance.settings.metrics
        self.host, self.port = str(settings.host), int(settings.port)
        token = str(settings.token or "")

        async def metrics_route(request: Request) -> Response:
            return await serve_metrics(request, metrics, token)

        app = Starlette(
            routes=[
                Route("/metrics", metrics_route, methods=["GET"]),
                Route("/healthz", pages.health, methods=["GET"]),
                *readiness.routes,
            ]
        )
        app.state.appliance = appliance
        app.state.readiness = ready
        config = uvicorn.Config(
            app,
            host=self.host,
            port=self.port,
            log_config=None,  # the process's own logging (appliance/logs.py)
            access_log=False,
            lifespan="off",
            server_header=False,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._serve, name=THREAD_NAME, daemon=True)
        self.quiet = QuietMetricsThread()

    def start(self) -> None:
        """Listen, or raise naming the setting when the address cannot be had."""
        logging.getLogger("uvicorn.error").addFilter(self.quiet)
        self.thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise SettingsError(
                    f"METRICS.PORT: cannot listen on {self.host}:{self.port}"
                    " (in use, or not an address of this host; set APPLIANCE_METRICS__PORT)"
                )
            time.sleep(0.01)
        log.info("metrics, health and readiness on http://%s:%d", self.host, self.port)

    def _serve(self) -> None:
        with contextlib.suppress(SystemExit):  # uvicorn exits when it cannot bind: start()
            self.server.run()  # reports that, naming the setting

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(timeout=5)
        logging.getLogger("uvicorn.error").removeFilter(self.quiet)


async def start_metrics_server(
    appliance: Any, metrics: Metrics | None = None
) -> MetricsServer | None:
    """Open the listener when `metrics.port` is set; None otherwise."""
    if not int(appliance.settings.metrics.port):
        return None
    ready = readiness.Readiness(collect_checks(appliance))
    server = MetricsServer(appliance, metrics or Metrics(appliance), ready)
    await asyncio.to_thread(server.start)
    return server
