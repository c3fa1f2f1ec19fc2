"""The Postgres analytics store against a real PostgreSQL 15: migrations, exactly-once
writes, the same numbers as the embedded store, sketch accuracy, partitions and retention."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from appliance.core.aggregation import DAY, HOUR, aggregate
from appliance.core.event import Event
from appliance.core.filters import PROPERTIES, Filter
from appliance.core.transport import Offset, Position
from plugins.store_postgres import segment_queries
from plugins.store_postgres.accounts import PostgresAccountStore
from plugins.store_postgres.analytics import PostgresAnalyticsStore
from plugins.store_postgres.migrate import migrate, scripts
from plugins.store_postgres.open_visits import OpenVisits
from plugins.store_sqlite.analytics import SqliteAnalyticsStore
from tests.postgres_server import database, fresh_database

T0 = 1_790_000_000  # 2026-09-21 14:13:20 UTC: ranges start and end inside hours
SITE, OTHER_SITE = 1, 2


@pytest.fixture
def dsn() -> Iterator[str]:
    with fresh_database() as fresh:
        yield fresh


@pytest.fixture
def store(dsn: str) -> Iterator[PostgresAnalyticsStore]:
    opened = PostgresAnalyticsStore(database(dsn))
    opened.open()
    yield opened
    opened.close()


def props(rng: random.Random) -> dict[str, str | int]:
    return {"plan": rng.choice(["pro", "free"]), "n": rng.randrange(3)}


def known_load(count: int, seed: int = 7, visitors: int = 120) -> list[Event]:
    """Events over ~50 hours in time order: sessions with pauses over and under 30 minutes,
    custom events with props, sources, browsers, countries, UTM tags, and a second site."""
    rng = random.Random(seed)
    events, ts = [], float(T0)
    for i in range(count):
        ts += rng.expovariate(1 / 60)  # about one a minute
        person = rng.randrange(visitors)
        custom = rng.random() < 0.1
        events.append(
            Event(
                event_id=f"e{i}", ts=round(ts, 3), site_id=OTHER_SITE if i % 10 == 9 else SITE,
                name=rng.choice(["Signup", "Download"]) if custom else "pageview",
                path=rng.choice(["/", "/pricing", "/blog", "/docs", "/Blog", "/a b"]),
                visitor_id=f"v{person}", session_id=f"s{person}-{rng.randrange(2)}",
                referrer_source=rng.choice(["Google", "Direct / None", "Bing", ""]),
                referrer=rng.choice(["", "https://news.example/x"]),
                utm_source=rng.choice(["", "", "newsletter"]),
                utm_campaign=rng.choice(["", "autumn"]),
                browser=rng.choice(["Firefox", "Chrome", "Safari"]),
                os=rng.choice(["Linux", "macOS", "iOS"]), device=rng.choice(["desktop", "mobile"]),
                country=rng.choice(["DE", "US", "FR", ""]),
                screen_width=rng.choice([0, 390, 800, 1280, 1920]),
                props=props(rng) if custom else {},
            )
        )  # fmt: skip
    return events


def write_in_flushes(store: object, events: list[Event], size: int, topic: str = "t") -> None:
    for first in range(0, len(events), size):
        chunk = events[first : first + size]
        offsets = [Offset(topic, "0", first + i) for i in range(len(chunk))]
        positions = [Position(topic, "0", first, first + len(chunk) - 1)]
        store.write_batch(aggregate(chunk, positions, offsets))  # type: ignore[attr-defined]


def count_rows(dsn: str, table: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608
    assert row is not None
    return row[0]


# --- migrations -------------------------------------------------------------------------


def test_migrations_create_everything_from_empty_and_rerun_as_no_ops(dsn: str) -> None:
    db = database(dsn)
    accounts, analytics = PostgresAccountStore(db), PostgresAnalyticsStore(db)
    accounts.open()
    analytics.open()
    with psycopg.connect(dsn) as conn:
        ledger = conn.execute(
            "SELECT track, version FROM schema_migrations ORDER BY track, version"
        ).fetchall()
        tables = {
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            )
        }
    expected = [("accounts", v) for v, _ in scripts("accounts")]
    expected += [("analytics", v) for v, _ in scripts("analytics")]
    assert ledger == expected
    assert {"users", "sites", "memberships", "api_keys", "login_sessions", "visitor_salts",
            "sites_version", "events", "visits", "rollup_site", "rollup_page", "rollup_event",
            "rollup_visit", "applied_positions", "latest_events"} <= tables  # fmt: skip
    assert analytics.sketches.enabled
    assert migrate(db, "accounts") == [] and migrate(db, "analytics") == []
    accounts.close()
    analytics.close()
    reopened = PostgresAnalyticsStore(database(dsn))
    reopened.open()  # a restart: nothing to apply, nothing breaks
    reopened.close()
    assert count_rows(dsn, "schema_migrations") == len(expected)


def test_without_hll_the_migration_leaves_sketches_out() -> None:
    with fresh_database(sketches=False) as dsn:
        store = PostgresAnalyticsStore(database(dsn))
        store.open()
        assert not store.sketches.enabled
        store.close()


# --- exactly once -----------------------------------------------------------------------


def test_redelivered_and_overlapping_batches_change_nothing_they_hold(
    store: PostgresAnalyticsStore, dsn: str
) -> None:
    events = known_load(30)
    first = aggregate(
        events[:20], [Position("t", "0", 0, 19)], [Offset("t", "0", i) for i in range(20)]
    )
    assert store.write_batch(first) is True
    assert store.write_batch(first) is False  # redelivered whole
    overlapping = aggregate(
        events[10:30], [Position("t", "0", 10, 29)], [Offset("t", "0", i) for i in range(10, 30)]
    )
    assert store.write_batch(overlapping) is True  # only offsets 20..29 are new
    assert store.write_batch(overlapping) is False
    assert count_rows(dsn, "events") == 30
    assert store.applied_positions("t") == {"0": 29}
    assert store.applied_positions("other") == {}
    kpis = store.kpis(SITE, T0, T0 + DAY, ())
    assert kpis.pageviews + kpis.events == sum(1 for e in events if e.site_id == SITE)


def test_two_writers_racing_on_one_batch_apply_it_once(dsn: str) -> None:
    """A rebalance can leave two processors with the same delivery for a moment."""
    stores = [PostgresAnalyticsStore(database(dsn)) for _ in range(2)]
    for opened in stores:
        opened.open()
    events = known_load(200)
    batch = aggregate(
        events, [Position("t", "3", 0, 199)], [Offset("t", "3", i) for i in range(200)]
    )
    results: list[bool] = []
    threads = [
        threading.Thread(target=lambda s=s: results.append(s.write_batch(batch))) for s in stores
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False, True]
    assert count_rows(dsn, "events") == 200
    for opened in stores:
        opened.close()


def visits_rows(dsn: str) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT * FROM visits ORDER BY visit_id").fetchall()


def visits_of_one_writer(events: list[Event], flush_size: int) -> list[tuple[object, ...]]:
    """The visits a fresh database at the newest migration gets from one writer alone."""
    with fresh_database() as alone_dsn:
        alone = PostgresAnalyticsStore(database(alone_dsn))
        alone.open()
        write_in_flushes(alone, events, flush_size)
        rows = visits_rows(alone_dsn)
        alone.close()
    return rows


def test_writers_taking_turns_failing_or_seeing_a_site_deleted_keep_the_same_visits(
    dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each processor remembers the open visits it wrote; it must read them again when
    another one wrote the site meanwhile (a rebalance), and forget nothing of a failed
    flush: the visits come out as one writer alone makes them."""
    events = known_load(1200)
    expected = visits_of_one_writer(events, 100)
    stores = [PostgresAnalyticsStore(database(dsn)) for _ in range(2)]
    for opened in stores:
        opened.open()
    failing = {"left": 0}
    real_stamp = OpenVisits.stamp

    def stamp(self: OpenVisits, conn: psycopg.Connection, sites: list[int]) -> int:
        if failing["left"]:
            failing["left"] -= 1
            raise RuntimeError("the flush fails after writing its visits")
        return real_stamp(self, conn, sites)

    monkeypatch.setattr(OpenVisits, "stamp", stamp)
    for number, first in enumerate(range(0, len(events), 100)):
        chunk = events[first : first + 100]
        batch = aggregate(
            chunk,
            [Position("t", "0", first, first + len(chunk) - 1)],
            [Offset("t", "0", first + i) for i in range(len(chunk))],
        )
        writer = stores[number // 3 % 2]  # three flushes each, then the other one
        if number % 4 == 1:
            failing["left"] = 1
            with pytest.raises(RuntimeError):
                writer.write_batch(batch)
        assert writer.write_batch(batch) is True
    assert visits_rows(dsn) == expected
    stores[0].delete_site(SITE)  # its events come again: the old visits must not continue
    write_in_flushes(stores[1], events[:300], 100, topic="again")
    with fresh_database() as again_dsn:
        again = PostgresAnalyticsStore(database(again_dsn))
        again.open()
        write_in_flushes(again, [e for e in events if e.site_id == OTHER_SITE], 1200)
        write_in_flushes(again, events[:300], 100, topic="again")
        site_only = [row for row in visits_rows(again_dsn) if row[1] == SITE]
        again.close()
    assert [row for row in visits_rows(dsn) if row[1] == SITE] == site_only
    for opened in stores:
        opened.close()


def test_sites_left_quiet_are_forgotten_and_read_again_when_they_return(dsn: str) -> None:
    """A processor forgets the open visits of a site it has not written for an hour; the
    site's next flush reads them again, so visits continue exactly as if remembered."""
    events = known_load(1200)
    per_site = {site: [e for e in events if e.site_id == site] for site in (SITE, OTHER_SITE)}

    def write_taking_turns(store: PostgresAnalyticsStore) -> list[bool]:
        remembered = []
        for first in range(0, max(len(v) for v in per_site.values()), 100):
            for partition, (site, site_events) in enumerate(per_site.items()):
                chunk = site_events[first : first + 100]
                if not chunk:
                    continue
                offsets = [Offset("t", str(partition), first + i) for i in range(len(chunk))]
                position = Position("t", str(partition), first, first + len(chunk) - 1)
                assert store.write_batch(aggregate(chunk, [position], offsets)) is True
                clock.now += 7200  # two hours between flushes: the other site goes quiet
                remembered.append(store.open_visits.remembers(OTHER_SITE if site == SITE else SITE))
        return remembered

    clock = FakeClock()
    with fresh_database() as remembering_dsn:
        remembering = PostgresAnalyticsStore(database(remembering_dsn))
        remembering.open()
        remembering.open_visits = OpenVisits(clock=lambda: 0.0)  # never idle
        assert all(write_taking_turns(remembering)[1:])  # once both sites were written
        expected = visits_rows(remembering_dsn)
        remembering.close()
    store = PostgresAnalyticsStore(database(dsn))
    store.open()
    store.open_visits = OpenVisits(clock=clock)
    assert not any(write_taking_turns(store))  # each flush forgot the other site
    assert visits_rows(dsn) == expected
    store.close()


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# --- the same numbers as the embedded store ---------------------------------------------


@pytest.mark.parametrize("sketches", [True, False], ids=["sketches", "exact"])
def test_known_load_gives_exactly_the_embedded_stores_numbers(
    sketches: bool, tmp_path: Path
) -> None:
    events = known_load(3000)
    sqlite = SqliteAnalyticsStore(tmp_path / "analytics.db")
    sqlite.open()
    write_in_flushes(sqlite, events, 250)
    start, end = T0 - 600, int(events[-1].ts) + 600  # all of it, edges inside hours
    hours = list(range(start, end, HOUR))
    days = [start, *range(T0 // DAY * DAY + DAY, end, DAY)]
    selections: list[tuple[Filter, ...]] = [
        (), (Filter("browser", "==", "Firefox"),), (Filter("page", "==", "/docs"),),
        (Filter("event", "!=", "Signup"), Filter("country", "!=", "")),
    ]  # fmt: skip
    with fresh_database(sketches=sketches) as dsn:
        store = PostgresAnalyticsStore(database(dsn))
        store.open()
        write_in_flushes(store, events, 250)
        assert count_rows(dsn, "events") == len(events)
        for filters in selections:
            for site in (SITE, OTHER_SITE):
                assert store.kpis(site, start, end, filters) == sqlite.kpis(
                    site, start, end, filters
                )
            assert store.timeseries(SITE, hours, end, filters) == sqlite.timeseries(
                SITE, hours, end, filters
            )
            assert store.timeseries(SITE, days, end, filters) == sqlite.timeseries(
                SITE, days, end, filters
            )
            assert store.top_pages(SITE, start, end, 4, filters) == sqlite.top_pages(
                SITE, start, end, 4, filters
            )
            for prop in PROPERTIES:
                for limit in (2, 50):  # a short list is ranked before sketches are unioned
                    ours = store.breakdown(SITE, start, end, prop, limit, filters)
                    theirs = sqlite.breakdown(SITE, start, end, prop, limit, filters)
                    assert ours == theirs, (prop, limit)
            for name, limit in (("Signup", 10), ("Download", 10), ("Signup", 1)):
                ours = store.event_properties(SITE, start, end, name, limit, filters)
                assert ours == sqlite.event_properties(SITE, start, end, name, limit, filters)
        assert store.latest_event_time(SITE) == max(e.ts for e in events if e.site_id == SITE)
        assert store.watermark() == events[-1].ts
        store.close()
    sqlite.close()


def test_unique_visitors_from_sketches_are_within_two_percent_over_any_range(
    store: PostgresAnalyticsStore,
) -> None:
    rng = random.Random(3)
    events = [
        Event(event_id=f"e{i}", ts=T0 + i * 4.0, site_id=SITE, name="pageview", path="/",
              visitor_id=f"visitor-{rng.randrange(60_000)}", session_id=f"s{i}")
        for i in range(60_000)
    ]  # fmt: skip
    write_in_flushes(store, events, 10_000)
    end = T0 + 60_000 * 4
    ranges = [(T0, end), (T0 + 1000, end - 1000), (T0 + DAY // 2, T0 + DAY + 1234)]
    with store.db.connection() as conn:
        for start, stop in ranges:
            exact = segment_queries.kpis(conn, SITE, start, stop, ()).visitors
            estimate = store.kpis(SITE, start, stop, ()).visitors
            assert abs(estimate - exact) / exact < 0.02, (start, stop, estimate, exact)
            [page] = store.top_pages(SITE, start, stop, 1, ())
            assert abs(page.visitors - exact) / exact < 0.02


# --- partitions and retention -----------------------------------------------------------


def test_retention_drops_whole_months_of_raw_events_and_keeps_the_rollups(
    store: PostgresAnalyticsStore, dsn: str
) -> None:
    months = [T0 - 62 * DAY, T0 - 31 * DAY, T0]  # July, August and September 2026
    events = [
        Event(event_id=f"e{i}", ts=ts + i, site_id=SITE, name="pageview", path="/",
              visitor_id="v", session_id=f"s{i}")
        for i, ts in enumerate(months)
    ]  # fmt: skip
    write_in_flushes(store, events, 1)
    with psycopg.connect(dsn) as conn:
        names = sorted(
            row[0]
            for row in conn.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = 'events'::regclass"
            )
        )
    assert {"events_2026_07", "events_2026_08", "events_2026_09"} <= set(names)
    store.retention_days = 40
    assert store.expire(now=T0) == ["events_2026_07"]  # August still has days within 40
    assert count_rows(dsn, "events") == 2
    july = (int(months[0]) - DAY, int(months[0]) + DAY)
    assert store.kpis(SITE, *july, ()).pageviews == 1  # the rollups remember it
    assert store.kpis(SITE, *july, (Filter("page", "==", "/"),)).pageviews == 0  # raw: gone
    assert store.expire(now=T0) == []


def test_one_flush_across_a_month_boundary_creates_both_months_partitions(
    store: PostgresAnalyticsStore, dsn: str
) -> None:
    # 2026-10-31 23:59:59.5 and 2026-11-01 00:00:00 UTC (ensure() looks months up by UTC day)
    november = 1_793_491_200
    events = [
        Event(event_id=f"e{i}", ts=ts, site_id=SITE, name="pageview", path="/",
              visitor_id="v", session_id="s")
        for i, ts in enumerate([november - 0.5, float(november)])
    ]  # fmt: skip
    write_in_flushes(store, events, 2)
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT tableoid::regclass::text, count(*) FROM events GROUP BY 1 ORDER BY 1"
        ).fetchall()
    assert rows == [("events_2026_10", 1), ("events_2026_11", 1)]
