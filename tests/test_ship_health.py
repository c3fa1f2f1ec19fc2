"""/readyz, /metrics and the logs of a real appliance (in-process, real servers behind it).

/readyz is flipped by a PostgreSQL of the test's own (tests/private_postgres.py), stopped
and started again while the app runs: the shared server stays up for the other tests.
"""

from __future__ import annotations

import io
import json
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from appliance.app import create_app
from appliance.logs import configure_logging
from tests.conftest import Browser, event, make_appliance, make_client, random_ip, wait_for
from tests.private_postgres import PrivatePostgres

TOKEN = "metrics-token-for-the-tests-0123"
BOT_UA = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


def scrape(client: Any, token: str = TOKEN) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of one scrape."""
    answer = client.get("/metrics", headers={"authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


# --- /readyz ------------------------------------------------------------------------------


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres().start()
    try:
        yield server
    finally:
        server.remove()


def test_readyz_names_postgres_while_it_is_stopped_and_recovers(
    tmp_path: Path, private_postgres: PrivatePostgres, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="appliance.web.readiness")
    # trust authentication: the password is ignored by the server, but it is in the settings
    password = "pg-password-that-must-never-show"
    appliance = make_appliance(
        tmp_path / "data",
        account_store="postgres",
        postgres={"dsn": private_postgres.dsn(password), "connect_timeout_s": 2},
    )
    with make_client(create_app(appliance)) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"data_dir": "ok", "postgres": "ok"}
        assert ready.headers["cache-control"] == "no-store"

        private_postgres.stop()
        down = wait_for(lambda: _not_ready(client), timeout_s=10)
        assert down.status_code == 503
        assert down.json() == {
            "status": "not ready",
            "failing": ["postgres"],
            "degraded": [],
            "checks": {"data_dir": "ok", "postgres": "failing"},
        }
        assert client.get("/healthz").status_code == 200  # alive all the same
        assert password not in down.text and str(private_postgres.port) not in down.text
        reasons = [r.getMessage() for r in caplog.records if "readiness: postgres" in r.message]
        assert any(f"127.0.0.1:{private_postgres.port}" in line for line in reasons), reasons

        private_postgres.start()
        back = wait_for(lambda: _ready(client), timeout_s=10)
        assert back.json()["status"] == "ready"
        assert any("postgres ok again" in r.getMessage() for r in caplog.records)


def _not_ready(client: Any) -> Any:
    answer = client.get("/readyz")
    return answer if answer.status_code == 503 else None


def _ready(client: Any) -> Any:
    answer = client.get("/readyz")
    return answer if answer.status_code == 200 else None


# --- /metrics -----------------------------------------------------------------------------


@pytest.fixture
def metered(tmp_path: Path) -> Iterator[Browser]:
    """The embedded profile with a metrics token; an admin owning example.com."""
    appliance = make_appliance(tmp_path / "data", metrics={"token": TOKEN})
    with make_client(create_app(appliance), base_url="http://testserver") as client:
        browser = Browser(client)
        assert browser.setup_admin().status_code == 303
        assert browser.add_domain("example.com").status_code == 201
        yield browser


class ExplodingEnricher:
    """A plugin's enricher with a bug: it raises on every event."""

    name = "exploding"
    order = 1

    def enrich(self, event: Any, context: Any) -> Any:
        raise RuntimeError("enricher bug")


class ExplodingPlugin:
    from appliance import hookimpl

    @hookimpl
    def register_enrichers(self, appliance: Any) -> list[Any]:
        return [ExplodingEnricher()]


def test_an_ingest_failure_is_a_json_500_and_is_counted(tmp_path: Path) -> None:
    appliance = make_appliance(
        tmp_path / "data", extra_plugins=(ExplodingPlugin(),), metrics={"token": TOKEN}
    )
    app = create_app(appliance)
    with make_client(app, raise_server_exceptions=False) as client:
        browser = Browser(client)
        assert browser.setup_admin().status_code == 303
        assert browser.add_domain("example.com").status_code == 201
        before = scrape(client)
        answer = client.post("/api/events", json=event("/"))
        assert answer.status_code == 500
        assert answer.json() == {"error": "something went wrong"}
        after = scrape(client)
        counted = [
            value(samples, "appliance_http_request_duration_seconds_count",
                  route="/api/events", method="POST")
            for samples in (before, after)
        ]  # fmt: skip
        assert counted[1] - counted[0] == 1
        assert appliance.transport.pending() == 0  # nothing of the request was queued


def test_metrics_need_the_token_on_the_main_port(tmp_path: Path) -> None:
    appliance = make_appliance(tmp_path / "data", metrics={"token": TOKEN})
    with make_client(create_app(appliance)) as client:
        assert client.get("/metrics").status_code == 401
        wrong = client.get("/metrics", headers={"authorization": "Bearer " + "x" * len(TOKEN)})
        assert wrong.status_code == 401
        assert wrong.headers["www-authenticate"].startswith("Bearer")
        assert TOKEN not in wrong.text
        assert scrape(client)  # the right token
    without_token = make_appliance(tmp_path / "other")
    with make_client(create_app(without_token)) as client:
        assert client.get("/metrics").status_code == 404  # never open on the public port


def test_counters_move_by_exactly_a_known_load(metered: Browser) -> None:
    client = metered.client
    before = scrape(client)
    for i in range(5):  # 10 accepted events, from two-event batches
        batch = [event(f"/a{i}"), event(f"/b{i}")]
        headers = {"x-forwarded-for": random_ip()}
        assert client.post("/api/events", json=batch, headers=headers).status_code == 202
    for _ in range(3):  # filtered: a crawler
        answer = client.post("/api/events", json=event("/"), headers={"user-agent": BOT_UA})
        assert answer.status_code == 202
    refused = [
        (client.post("/api/events", content=b"{not json", headers={"content-type": "text/plain"}),
         400),
        (client.post("/api/events", json={"domain": "example.com"}), 400),  # no path
        (client.post("/api/events", json=event("/", domain="unknown.example")), 404),
        (client.post("/api/events", content=b"x" * 20000, headers={"content-type": "text/plain"}),
         413),
        (client.post("/api/events", content=b"{}", headers={"content-type": "image/png"}), 415),
    ]  # fmt: skip
    assert [answer.status_code for answer, _ in refused] == [status for _, status in refused]
    wait_for(lambda: client.get("/healthz").json()["processor"]["events"] >= 10)
    after = scrape(client)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("appliance_events_accepted_total") == 10
    assert moved("appliance_events_filtered_total") == 3
    assert moved("appliance_events_rejected_total", reason="invalid") == 2
    assert moved("appliance_events_rejected_total", reason="unknown_domain") == 1
    assert moved("appliance_events_rejected_total", reason="too_large") == 1
    assert moved("appliance_events_rejected_total", reason="unsupported_type") == 1
    assert moved("appliance_events_rejected_total", reason="rate_limited") == 0
    requests = 5 + 3 + len(refused)
    assert moved("appliance_http_request_duration_seconds_count",
                 route="/api/events", method="POST") == requests  # fmt: skip
    assert moved("appliance_processor_events_total") == 10
    assert moved("appliance_processor_flush_duration_seconds_count") >= 1
    assert moved("appliance_processor_flush_duration_seconds_sum") > 0
    assert value(after, "appliance_store_write_errors_total", store="sqlite") == 0
    assert value(after, "appliance_transport_pending_events") == 0
    assert value(after, "appliance_info", version="0.1.0", transport="memory") == 1
    # Route templates only: no label carries a path someone sent.
    routes = {dict(labels).get("route") for (_, labels) in after if dict(labels).get("route")}
    assert "/api/events" in routes and not any("/a0" in route for route in routes)


def test_rate_limited_requests_are_counted_as_such(tmp_path: Path) -> None:
    appliance = make_appliance(
        tmp_path / "data", metrics={"token": TOKEN},
        ingest={"rate_limit_per_site": 1, "burst_per_site": 1},
    )  # fmt: skip
    with make_client(create_app(appliance)) as client:
        browser = Browser(client)
        assert browser.setup_admin().status_code == 303
        assert browser.add_domain("example.com").status_code == 201
        statuses = [client.post("/api/events", json=event("/")).status_code for _ in range(3)]
        assert statuses[0] == 202 and statuses.count(429) == 2
        assert value(scrape(client), "appliance_events_rejected_total", reason="rate_limited") == 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_separate_metrics_port_serves_metrics_health_and_readiness(tmp_path: Path) -> None:
    port = _free_port()
    appliance = make_appliance(tmp_path / "data", metrics={"port": port, "token": TOKEN})
    base = f"http://127.0.0.1:{port}"
    with make_client(create_app(appliance)) as client:
        assert client.get("/healthz").status_code == 200
        assert httpx.get(f"{base}/metrics", timeout=5).status_code == 401
        scraped = httpx.get(f"{base}/metrics", headers={"authorization": f"Bearer {TOKEN}"})
        assert scraped.status_code == 200 and "appliance_events_accepted_total" in scraped.text
        assert httpx.get(f"{base}/healthz", timeout=5).json()["status"] == "ok"
        assert httpx.get(f"{base}/readyz", timeout=5).json()["status"] == "ready"
    with pytest.raises(httpx.TransportError):  # closed with the appliance
        httpx.get(f"{base}/healthz", timeout=2)


def test_a_taken_metrics_port_stops_start_up_naming_the_setting(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        appliance = make_appliance(tmp_path / "data", metrics={"port": taken.getsockname()[1]})
        app = create_app(appliance)
        with pytest.raises(Exception, match="METRICS.PORT: cannot listen"), make_client(app):
            pass


def test_metrics_token_is_checked_without_quoting_it(tmp_path: Path) -> None:
    from appliance.core.settings import SettingsError

    with pytest.raises(SettingsError, match="METRICS.TOKEN: must be at least 16") as raised:
        make_appliance(tmp_path / "data", metrics={"token": "short-secret"})
    assert "short-secret" not in str(raised.value)


# --- logs ---------------------------------------------------------------------------------


def test_access_log_names_the_route_template_never_the_path(
    metered: Browser, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="appliance.access")
    metered.client.get("/invitations/secret-invitation-token-123")
    metered.client.get("/api/analytics/kpis?domain=example.com&period=today")
    lines = [r.getMessage() for r in caplog.records if r.name == "appliance.access"]
    assert "GET /invitations/{token} 404" in "\n".join(lines)
    assert "GET /api/analytics/kpis 200" in "\n".join(lines)
    text = "\n".join(lines)
    assert "secret-invitation-token-123" not in text and "period=today" not in text
    assert "testclient" not in text  # the client's address is never logged


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_logs_are_one_object_per_line_without_secrets(
    tmp_path: Path, restore_logging: None
) -> None:
    from appliance.core.settings import load_settings

    secrets = {
        "redis": "redis-password-value",
        "sasl": "kafka-sasl-password",
        "dsn": "pg-password-in-dsn",
        "token": TOKEN,
    }
    settings = load_settings(
        log_format="json",
        redis={"password": secrets["redis"]},
        kafka={"sasl_password": secrets["sasl"]},
        postgres={"dsn": f"postgresql://app:{secrets['dsn']}@db.example:5432/app"},
        metrics={"token": secrets["token"]},
    )
    stream = io.StringIO()
    configure_logging(settings, stream=stream)
    log = logging.getLogger("appliance.test")
    log.info("connecting with %s and %s", secrets["redis"], settings.postgres.dsn)
    log.warning("driver said: password=%s", secrets["sasl"], extra={"detail": secrets["token"]})
    try:
        raise RuntimeError(f"failed with {secrets['dsn']}")
    except RuntimeError:
        log.exception("broken")
    lines = stream.getvalue().splitlines()
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    assert [e["level"] for e in entries] == ["info", "warning", "error"]
    assert entries[0]["logger"] == "appliance.test" and entries[0]["time"].endswith("Z")
    assert "***" in entries[0]["message"] and entries[1]["detail"] == "***"
    assert "RuntimeError" in entries[2]["exception"]
    for secret in secrets.values():
        assert secret not in stream.getvalue()


def test_text_logs_are_readable_lines(tmp_path: Path, restore_logging: None) -> None:
    from appliance.core.settings import load_settings

    stream = io.StringIO()
    configure_logging(load_settings(redis={"password": "hunter2-hunter2"}), stream=stream)
    logging.getLogger("appliance.test").warning("auth with hunter2-hunter2 failed")
    (line,) = stream.getvalue().splitlines()
    assert line.endswith("WARNING appliance.test: auth with *** failed")
    assert time.strftime("%Y-") in line
