"""Token buckets on /api/events: per address and per site, 429 with Retry-After."""

from __future__ import annotations

from pathlib import Path

from appliance.app import create_app
from appliance.core.ratelimit import TokenBuckets
from tests.conftest import Browser, event, make_appliance, make_client, wait_for


class FakeClock:
    """Time that moves only when the test says (the buckets' arithmetic, not the machine)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_refills_at_its_rate_and_caps_at_burst() -> None:
    clock = FakeClock()
    buckets = TokenBuckets(rate=2, burst=3, clock=clock)
    assert [buckets.take("a") for _ in range(3)] == [0, 0, 0]
    assert buckets.take("a") == 0.5  # empty: one token is half a second away
    assert buckets.take("b") == 0  # other keys are unaffected
    clock.now += 10
    assert [buckets.take("a") for _ in range(3)] == [0, 0, 0]  # refilled to burst, not 20
    assert buckets.take("a") > 0
    assert buckets.take("a", cost=5) == 2.5


def test_key_count_is_bounded() -> None:
    buckets = TokenBuckets(rate=1, burst=1, max_keys=100, clock=FakeClock())
    for n in range(1000):
        buckets.take(n)
    assert len(buckets._buckets) == 100


def test_per_address_and_per_site_limits(tmp_path: Path) -> None:
    limits = {
        "rate_limit_per_ip": 1,
        "burst_per_ip": 5,
        "rate_limit_per_site": 1,
        "burst_per_site": 8,
    }
    appliance = make_appliance(
        tmp_path / "data", ingest=limits | {"trusted_proxies": ["testclient"]}
    )
    with make_client(create_app(appliance)) as client:
        browser = Browser(client)
        browser.setup_admin()
        browser.add_domain("example.com")
        browser.add_domain("other.org")

        def post(domain: str, ip: str, count: int = 1) -> int:
            body = [event("/", domain=domain)] * count
            return client.post(
                "/api/events", json=body, headers={"x-forwarded-for": ip}
            ).status_code

        assert [post("example.com", "198.51.100.1") for _ in range(6)] == [202] * 5 + [429]
        refused = client.post(
            "/api/events", json=event("/"), headers={"x-forwarded-for": "198.51.100.1"}
        )
        assert refused.headers["retry-after"] == "1" and "address" in refused.json()["error"]
        # Another address still gets through, until the site's own bucket (8) runs dry.
        assert post("example.com", "198.51.100.2", 3) == 202
        assert post("example.com", "198.51.100.3") == 429
        assert (
            "site"
            in client.post(
                "/api/events", json=event("/"), headers={"x-forwarded-for": "198.51.100.4"}
            ).json()["error"]
        )
        # Other sites are unaffected.
        assert post("other.org", "198.51.100.5") == 202
        wait_for(lambda: appliance.processor.stats.events == 9)
        assert appliance.ingest.stats.rate_limited >= 3
        # Nothing of a refused request was stored: 5 + 3 + 1 accepted events.
        with appliance.stores[0].reader.locked() as conn:
            assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 9


def test_limits_are_off_or_generous_by_default(tmp_path: Path) -> None:
    appliance = make_appliance(tmp_path / "data")
    assert not appliance.ingest.per_ip.enabled
    assert appliance.ingest.per_site.rate >= 1000
