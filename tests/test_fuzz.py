"""Garbage at the public API: generated inputs never cause a 5xx, and nothing of a refused
request reaches the transport. Hypothesis drives /api/events in-process; Schemathesis drives
the real server from its own OpenAPI description."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.app import create_app
from tests.conftest import BROWSER_UA, Browser, make_appliance, make_client
from tests.servers import Server, cli, free_port, read_response, server_env

pytestmark = pytest.mark.security
REFUSALS = {400, 404, 413, 415, 429, 503}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=30,
)
event_like = st.fixed_dictionaries(
    {"domain": st.sampled_from(["example.com", "EXAMPLE.com", "other.org", "", "x" * 300])},
    optional={
        "path": st.text(max_size=3000) | json_values,
        "referrer": st.text(max_size=50) | json_values,
        "sessionId": st.text(max_size=200) | json_values,
        "viewport": json_values
        | st.fixed_dictionaries({"width": st.integers(), "height": st.integers()}),
        "name": st.text(max_size=150) | json_values,
        "props": st.dictionaries(st.text(max_size=80), json_values, max_size=40) | json_values,
        "url": st.text(max_size=50),
    },
)
valid_events = st.fixed_dictionaries(
    {"domain": st.just("example.com"), "path": st.text(min_size=1, max_size=100)},
    optional={
        "name": st.text(min_size=1, max_size=20),
        "props": st.dictionaries(
            st.text(min_size=1, max_size=10), st.integers() | st.text(max_size=10), max_size=5
        ),
    },
)
bodies = (
    valid_events.map(lambda value: json.dumps(value).encode())
    | json_values.map(lambda value: json.dumps(value).encode())
    | event_like.map(lambda value: json.dumps(value).encode())
    | st.lists(event_like, max_size=60).map(lambda value: json.dumps(value).encode())
    | st.binary(max_size=300)
)


def test_generated_bodies_never_5xx_and_refusals_publish_nothing(tmp_path: Path) -> None:
    appliance = make_appliance(tmp_path / "data", processor={"embedded": False})
    with make_client(create_app(appliance)) as client:
        Browser(client).setup_admin()
        Browser(client).add_domain("example.com")
        seen: dict[int, int] = {}

        @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
        @given(
            body=bodies,
            content_type=st.sampled_from(["application/json", "text/plain", "text/html"]),
        )
        def check(body: bytes, content_type: str) -> None:
            before = appliance.transport.pending()
            response = client.post(
                "/api/events", content=body, headers={"content-type": content_type}
            )
            seen[response.status_code] = seen.get(response.status_code, 0) + 1
            if response.status_code == 202:
                assert appliance.transport.pending() == before + response.json()["accepted"]
            else:
                assert response.status_code in REFUSALS, (response.status_code, response.text)
                assert "error" in response.json()
                assert appliance.transport.pending() == before

        check()
    print(f"statuses seen: {dict(sorted(seen.items()))}")
    assert seen.get(202) and seen.get(400)


def test_deep_or_huge_json_is_refused_quickly(client: Any) -> None:
    Browser(client).setup_admin()
    Browser(client).add_domain("example.com")
    for body in (b"[" * 8000 + b"]" * 8000, b'{"a":' * 3000 + b"1" + b"}" * 3000, b"9" * 16000):
        started = time.monotonic()
        response = client.post(
            "/api/events", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code in (400, 413)
        assert time.monotonic() - started < 0.5


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("fuzz")
    env = server_env(root / "data")
    running = Server(env, free_port(), root / "server.log")
    running.start()
    yield running
    running.stop()


def test_one_byte_over_the_limit_is_413_and_the_connection_stays_usable(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.settimeout(5)
        body = b"x" * 16385
        sock.sendall(
            b"POST /api/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body) + body
        )
        assert read_response(sock)[0].startswith(b"HTTP/1.1 413")
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock)[0].startswith(b"HTTP/1.1 200")


@pytest.fixture(scope="module")
def api_key(server: Server) -> str:
    cli(
        server.env,
        "user",
        "add",
        "owner@example.com",
        "--password-stdin",
        stdin="a long password!\n",
    )
    cli(server.env, "site", "add", "example.com", "--owner", "owner@example.com")
    return cli(server.env, "token", "create", "owner@example.com").strip().splitlines()[-1]


def test_api_from_its_openapi_description(server: Server, api_key: str) -> None:
    """Every described operation, fed Schemathesis's generated cases (schema-valid and not)."""
    schema = schemathesis.openapi.from_url(f"{server.url}/api/openapi.json")
    headers = {"authorization": f"Bearer {api_key}", "user-agent": BROWSER_UA}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 5
    statuses: dict[int, int] = {}
    for operation in operations:

        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            if case.query and "domain" in case.query:
                case.query["domain"] = "example.com"  # a real site: the rest is what varies
            response = case.call(base_url=server.url, headers=headers)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            assert response.status_code < 500, (case.method, case.path, response.text)

        check()
    print(f"schemathesis statuses: {dict(sorted(statuses.items()))}")
    assert statuses.get(200) and statuses.get(400)


def test_openapi_description_matches_the_event_schema(server: Server) -> None:
    described = httpx.get(f"{server.url}/api/openapi.json").json()
    event = described["components"]["schemas"]["IncomingEvent"]
    assert event["required"] == ["domain", "path"]
    assert event["properties"]["path"]["maxLength"] == 2048
    assert set(described["paths"]) >= {
        "/api/events",
        "/api/analytics/kpis",
        "/api/analytics/breakdown",
    }
