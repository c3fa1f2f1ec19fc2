"""The Postgres profile end to end: settings, the pooler and TLS options, PostgreSQL stopped
in the middle of a load (nothing lost, nothing doubled, a clear 503 meanwhile), `appliance
migrate`, and accounts and domains shared by two app processes and kept across a restart."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import psycopg
import pytest

from appliance.app import create_app
from appliance.core.settings import SettingsError, load_settings
from appliance.core.stores import StoreUnavailable
from plugins.store_postgres.analytics import PostgresAnalyticsStore
from tests.conftest import BROWSER_UA, Browser, event, make_appliance, make_client, wait_for
from tests.postgres_server import database, fresh_database
from tests.private_postgres import PrivatePostgres
from tests.servers import Server, cli, free_port, server_env

PASSWORD = "correct horse battery staple"


def postgres_profile(dsn: str, **postgres: Any) -> dict[str, Any]:
    return {
        "stores": ["postgres"],
        "account_store": "postgres",
        "postgres": {"dsn": dsn, "pool_timeout_s": 1, "connect_timeout_s": 1} | postgres,
    }


# --- settings (no server needed) --------------------------------------------------------


def test_the_embedded_profile_loads_the_plugin_without_a_server(tmp_path: Path) -> None:
    appliance = make_appliance(tmp_path)
    assert "store_postgres" in {plugin.name for plugin in appliance.plugins}
    assert [store.name for store in appliance.stores] == ["sqlite"]


@pytest.mark.parametrize(
    ("postgres", "message"),
    [
        ({}, "POSTGRES.DSN: missing"),
        ({"dsn": "postgresql://u:s3cret@db.example:5432/x", "pool_min": 5, "pool_max": 2},
         "POSTGRES.POOL_MIN: must not exceed POSTGRES.POOL_MAX"),
        ({"dsn": "postgresql://u:s3cret@db.example/x", "sslmode": "always"},
         "POSTGRES.SSLMODE: must be one of disable, allow, prefer, require"),
        ({"dsn": "host=db.example password=s3cret =oops"}, "POSTGRES.DSN: not a PostgreSQL"),
    ],
)  # fmt: skip
def test_bad_postgres_settings_stop_start_up_without_showing_the_password(
    tmp_path: Path, postgres: dict[str, Any], message: str
) -> None:
    with pytest.raises(SettingsError) as raised:
        make_appliance(tmp_path, account_store="postgres", postgres=postgres)
    assert message in str(raised.value)
    assert "s3cret" not in str(raised.value)


def test_profiles_put_accounts_and_analytics_in_postgres_over_tls_in_production(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("APPLIANCE_ENV", "local")
    local = load_settings()
    assert "postgres" in local.stores and local.account_store == "postgres"
    assert local.postgres.dsn.endswith("@127.0.0.1:5432/appliance")
    monkeypatch.setenv("APPLIANCE_ENV", "production")
    assert load_settings().postgres.sslmode == "require"


# --- connections ------------------------------------------------------------------------


@pytest.fixture
def dsn() -> Iterator[str]:
    with fresh_database() as fresh:
        yield fresh


@pytest.mark.parametrize("prepared", [True, False])
def test_no_server_side_prepared_statements_for_a_transaction_pooler(
    dsn: str, prepared: bool
) -> None:
    db = database(dsn, prepared_statements=prepared, pool_max=1)
    db.open()
    with db.connection() as conn:
        for _ in range(8):
            conn.execute("SELECT count(*) FROM pg_class WHERE relpages > %s", (0,))
        row = conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()
    db.close()
    assert row is not None and (row[0] > 0) is prepared


def test_sslmode_require_connects_over_tls(dsn: str) -> None:
    db = database(dsn, sslmode="require")
    db.open()
    with db.connection() as conn:
        assert conn.pgconn.ssl_in_use
    db.close()


def test_an_unreachable_server_is_named_without_the_password() -> None:
    store = PostgresAnalyticsStore(database("postgresql://appliance:s3cret@127.0.0.1:1/appliance"))
    with pytest.raises(StoreUnavailable) as raised:
        store.open()
    message = str(raised.value)
    assert message.startswith("postgres at 127.0.0.1:1/appliance is unavailable: ")
    assert "refused" in message and "s3cret" not in message


# --- PostgreSQL stopped in the middle of a load -----------------------------------------


@pytest.fixture
def own_postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL 15 of this test's own to stop and start: stopping the shared cluster
    (`pg_ctlcluster 15 main stop`) would cut off every other test run and bench using it."""
    server = PrivatePostgres().start()
    yield server
    server.remove()


def count_events(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM events").fetchone()
    assert row is not None
    return row[0]


@pytest.mark.security
def test_postgres_stopped_mid_load_catches_up_exactly_and_says_so_meanwhile(
    own_postgres: PrivatePostgres, tmp_path: Path
) -> None:
    dsn = own_postgres.dsn()
    appliance = make_appliance(tmp_path / "data", **postgres_profile(dsn))
    with make_client(create_app(appliance), base_url="http://testserver") as client:
        admin = Browser(client)
        assert admin.setup_admin().status_code == 303
        assert admin.add_domain("example.com").status_code == 201
        appliance.sites.refresh_interval_s = 0.05
        wait_for(lambda: appliance.sites.lookup("example.com"), timeout_s=3)

        def send(first: int, count: int) -> None:
            for i in range(first, first + count, 10):
                batch = [event(f"/p{n % 7}", sessionId=f"s{n % 13}") for n in range(i, i + 10)]
                assert client.post("/api/events", json=batch).status_code == 202

        send(0, 60)
        wait_for(lambda: appliance.processor.stats.events == 60, timeout_s=5)
        own_postgres.stop()  # fast shutdown: sessions are cut, as in an outage
        try:
            send(60, 60)  # accepted: ingest never waits for a store
            wait_for(lambda: appliance.processor.stats.store_errors >= 1, timeout_s=10)
            assert appliance.transport.pending() == 60  # not committed
            stats = client.get("/api/analytics/kpis?domain=example.com&period=today")
            assert stats.status_code == 503
            assert stats.headers["retry-after"] == "5"
            where = f"postgres at 127.0.0.1:{own_postgres.port}/postgres is unavailable: "
            assert stats.json()["error"].startswith(where)
            page = client.get("/sites/example.com")
            assert page.status_code == 503 and "Traceback" not in page.text
            assert "unavailable" in page.text
        finally:
            own_postgres.start()
        send(120, 30)
        wait_for(lambda: appliance.transport.pending() == 0, timeout_s=30)
        kpis = client.get("/api/analytics/kpis?domain=example.com&period=today").json()
        assert kpis["pageviews"] == 150
        assert kpis["sessions"] == 13
    assert count_events(dsn) == 150


def test_appliance_migrate_creates_the_schema_and_reruns_as_a_no_op(
    dsn: str, tmp_path: Path
) -> None:
    env = server_env(tmp_path / "data") | {
        "APPLIANCE_STORES": '["postgres"]',
        "APPLIANCE_ACCOUNT_STORE": "postgres",
        "APPLIANCE_POSTGRES__DSN": dsn,
    }
    assert cli(env, "migrate").strip() == "migrations applied"
    with psycopg.connect(dsn) as conn:
        first = conn.execute("SELECT track, version, applied_at FROM schema_migrations").fetchall()
    assert {track for track, _, _ in first} == {"accounts", "analytics"}
    assert cli(env, "migrate").strip() == "migrations applied"
    with psycopg.connect(dsn) as conn:
        again = conn.execute("SELECT track, version, applied_at FROM schema_migrations").fetchall()
    assert again == first


# --- accounts and domains shared by two app processes -----------------------------------


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def start(env: dict[str, str], name: str) -> Server:
        running = Server(env, free_port(), tmp_path / f"{name}.log")
        started.append(running)
        running.start()
        return running

    yield start
    for running in started:
        if running.process is not None:
            running.stop(signal.SIGKILL)


def test_accounts_and_domains_are_shared_by_two_processes_and_survive_a_restart(
    dsn: str, tmp_path: Path, start_server: Callable[..., Server]
) -> None:
    profile = {
        "APPLIANCE_STORES": '["postgres"]',
        "APPLIANCE_ACCOUNT_STORE": "postgres",
        "APPLIANCE_POSTGRES__DSN": dsn,
    }
    env_a = server_env(tmp_path / "a") | profile
    env_b = server_env(tmp_path / "b") | profile
    cli(env_a, "user", "add", "owner@example.com", "--password-stdin", stdin=PASSWORD + "\n")
    cli(env_a, "site", "add", "shop.example", "--owner", "owner@example.com")
    key = cli(env_b, "token", "create", "owner@example.com").strip().splitlines()[-1]
    auth = {"authorization": f"Bearer {key}"}
    a, b = start_server(env_a, "a"), start_server(env_b, "b")

    def domains(server: Server) -> list[str]:
        answer = httpx.get(f"{server.url}/api/domains", headers=auth, timeout=5)
        assert answer.status_code == 200, answer.text
        return sorted(site["domain"] for site in answer.json()["domains"])

    assert domains(a) == domains(b) == ["shop.example"]
    added = httpx.post(
        f"{a.url}/api/domains", json={"domain": "blog.example"}, headers=auth, timeout=5
    )
    assert added.status_code == 201, added.text
    assert domains(b) == ["blog.example", "shop.example"]

    def send_to_b() -> bool:  # B learns of the new domain from sites_version within a second
        hit = {"domain": "blog.example", "path": "/hello", "sessionId": "one"}
        answer = httpx.post(
            f"{b.url}/api/events", json=hit, headers={"user-agent": BROWSER_UA}, timeout=5
        )
        return answer.status_code == 202

    wait_for(send_to_b, timeout_s=5, interval_s=0.2)

    def pageviews_seen_by_a() -> int:
        url = f"{a.url}/api/analytics/kpis?domain=blog.example&period=today"
        return httpx.get(url, headers=auth, timeout=5).json()["pageviews"]

    assert wait_for(pageviews_seen_by_a, timeout_s=5) == 1  # B's events, A's stats
    a.stop()
    time.sleep(0.1)
    a.start()
    assert domains(a) == ["blog.example", "shop.example"]
    assert pageviews_seen_by_a() == 1
