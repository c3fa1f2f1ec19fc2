"""Unfiltered stats from per-UTC-day rollups (store_sqlite/whole_days.py, daily.py) equal a
rebuild of the range's raw events (tests/sqlite_rebuild.py): ids rotating each UTC day as the
visitor-id enricher's, site time zones off UTC by hours, half and three-quarter hours, visits
crossing midnight and range edges, late and redelivered batches; fixed ids fall back."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

from appliance.core.aggregation import DAY, HOUR, aggregate
from appliance.core.event import Event
from appliance.core.filters import PROPERTIES
from appliance.core.periods import parse_range
from appliance.core.transport import Offset, Position
from plugins.store_sqlite import whole_days
from plugins.store_sqlite.analytics import TABLES, SqliteAnalyticsStore
from tests import sqlite_rebuild
from tests.test_sqlite_visits import SELECTIONS, SITE, T0, migrated_to, write

DAYS = 9  # of data, T0 - 4 days to T0 + 5 days
ZONES = ("UTC", "Asia/Kolkata", "America/New_York", "Pacific/Chatham")


def rotating_events(sessions: int, seed: int, fixed_ids: bool = False) -> list[Event]:
    """Sessions of people over DAYS days. A person's id is per UTC day (or fixed); half the
    sessions keep the tracker's id across midnight, the others are the visitor id. Some start
    just before a midnight, some run for hours. Times are distinct (see random_events)."""
    rng = random.Random(seed)
    events: list[Event] = []
    for number in range(sessions):
        person = f"p{rng.randrange(sessions // 3)}"
        kind = rng.random()
        if kind < 0.3:  # just before a UTC midnight
            ts = T0 + rng.randrange(-4, 5) * DAY - rng.randrange(60, 3000)
        else:
            ts = T0 - 4 * DAY + rng.randrange(DAYS * DAY)
        steps = rng.randrange(1, 40) if kind > 0.95 else rng.randrange(1, 7)
        tracker = rng.random() < 0.5
        attributes = {"browser": rng.choice(["Firefox", "Chrome", "Safari"]),
                      "country": rng.choice(["DE", "", "IN", "US"]),
                      "referrer_source": rng.choice(["", "Google", "News"]),
                      "screen_width": rng.choice([0, 390, 1500])}  # fmt: skip
        for step in range(steps):
            day = int(ts // DAY)
            visitor = f"v-{person}" if fixed_ids else f"v{day}-{person}"
            custom = rng.random() < 0.15
            events.append(
                Event(event_id=f"e{number}-{step}", ts=ts + len(events) / 4096, site_id=SITE,
                      name=rng.choice(["Signup", "Download"]) if custom else "pageview",
                      path=rng.choice(["/", "/docs", "/blog", "/a b"]), visitor_id=visitor,
                      session_id=f"t{number}" if tracker else visitor,
                      props={"plan": rng.choice(["a", "b"])} if custom else {}, **attributes)
            )  # fmt: skip
            ts += rng.choice([20, 300, 1200, 1790, 2400] if steps < 10 else [600, 1500])
    return events


def in_chunks(events: list[Event], seed: int) -> list[list[Event]]:
    """Mostly in time order, some an hour late, in flushes of varied size."""
    rng = random.Random(seed)
    ordered = sorted(events, key=lambda e: e.ts + rng.choice([0, 0, 0, 3600]))
    chunks, first = [], 0
    while first < len(ordered):
        size = rng.choice([7, 60, 250])
        chunks.append(ordered[first : first + size])
        first += size
    return chunks


def ranges() -> list[tuple[int, int, list[int]]]:
    """(start, end, day buckets): local 7-day and 30-day periods in each zone (now on a
    data day and after the data), from/to ranges, and ranges cut at odd times."""
    found = []
    for tz in ZONES:
        for now in (T0 + 2 * DAY + 5000, T0 + 7 * DAY):
            for period in ("7d", "30d"):
                span = parse_range(period, now=now, tz=tz)
                found.append((span.start, span.end, span.buckets()))
        span = parse_range(None, "2026-09-19", "2026-09-24", "day", tz=tz)
        found.append((span.start, span.end, span.buckets()))
    for start, end in ((T0 - 3 * DAY + 1000, T0 + 4 * DAY - 5), (T0 - DAY - 600, T0 + DAY + 900)):
        found.append((start, end, [start, *range((start // DAY + 1) * DAY, end, DAY)]))
    return found


def assert_unfiltered_same(store: SqliteAnalyticsStore, start: int, end: int, days: list[int]):
    conn = store.reader._conn
    assert store.kpis(SITE, start, end) == sqlite_rebuild.kpis(conn, SITE, start, end, ())
    ours = store.timeseries(SITE, days, end)
    assert ours == sqlite_rebuild.timeseries(conn, SITE, days, end, ())
    for limit in (3, 50):
        ours = store.top_pages(SITE, start, end, limit)
        assert ours == sqlite_rebuild.top_pages(conn, SITE, start, end, limit, ())
    for prop in PROPERTIES:
        ours = store.breakdown(SITE, start, end, prop, 50)
        assert ours == sqlite_rebuild.breakdown(conn, SITE, start, end, prop, 50, ()), prop


def fast_ranges(store: SqliteAnalyticsStore) -> int:
    """How many of `ranges()` the rollups answer (checked against the rebuild meanwhile)."""
    fast = 0
    for start, end, days in ranges():
        assert_unfiltered_same(store, start, end, days)
        with store.reader.locked() as conn:
            fast += whole_days.split(conn, SITE, start, end, by_visit=True) is not None
    return fast


@pytest.fixture
def store(tmp_path: Path) -> SqliteAnalyticsStore:
    opened = SqliteAnalyticsStore(tmp_path / "analytics.db")
    opened.open()
    yield opened
    opened.close()


@pytest.mark.parametrize("seed", [1, 2])
def test_rotating_ids_are_answered_from_the_days_rollups(
    store: SqliteAnalyticsStore, seed: int
) -> None:
    write(store, in_chunks(rotating_events(700, seed), seed))
    assert fast_ranges(store) >= len(ranges()) // 2
    start, end, _ = ranges()[0]
    for filters in SELECTIONS[1:]:  # filtered: the exact path, on the same data
        assert store.kpis(SITE, start, end, filters) == sqlite_rebuild.kpis(
            store.reader._conn, SITE, start, end, filters
        )


def test_redelivery_leaves_the_rollups_unchanged(store: SqliteAnalyticsStore) -> None:
    chunks = in_chunks(rotating_events(300, 5), 5)
    write(store, chunks)

    def rollups() -> list[list[tuple]]:
        with store.reader.locked() as conn:
            return [
                sorted(tuple(row) for row in conn.execute(f"SELECT * FROM {table}"))  # noqa: S608
                for table in ("day_totals", "day_values", "dirty_days", "visitor_days")
            ]

    before = rollups()
    events = [event for chunk in chunks for event in chunk]
    for first, last in ((0, len(chunks[0]) - 1), (len(events) - 100, len(events) - 1)):
        offsets = [Offset("t", "0", n) for n in range(first, last + 1)]
        again = aggregate(events[first : last + 1], [Position("t", "0", first, last)], offsets)
        assert store.write_batch(again) is False
    assert rollups() == before
    for start, end, days in ranges()[:6]:
        assert_unfiltered_same(store, start, end, days)


def test_fixed_ids_across_days_take_the_exact_path(store: SqliteAnalyticsStore) -> None:
    write(store, in_chunks(rotating_events(400, 3, fixed_ids=True), 3))
    assert fast_ranges(store) == 0


def test_a_dirty_day_is_answered_exactly(store: SqliteAnalyticsStore) -> None:
    write(store, in_chunks(rotating_events(400, 4), 4))
    visitor = f"v{(T0 - DAY) // DAY}-late"
    late = [Event(event_id="late", ts=T0 - DAY + 7 * HOUR, site_id=SITE, name="pageview",
                  path="/late", visitor_id=visitor, session_id=visitor)]  # fmt: skip
    write(store, [late])  # nothing newer in that flush: its day stays dirty
    with store.reader.locked() as conn:
        assert conn.execute("SELECT count(*) FROM dirty_days").fetchone()[0] >= 1
    start, end = T0 - 3 * DAY, T0 + 3 * DAY
    with store.reader.locked() as conn:
        cut = whole_days.split(conn, SITE, start, end, by_visit=True)
    assert cut is not None and not cut.params["skip_from"] <= T0 - DAY < cut.params["skip_to"]
    assert_unfiltered_same(store, start, end, list(range(start, end, DAY)))
    assert store.top_pages(SITE, start, end, 10)[-1].path == "/late"


def test_migration_backfills_the_day_rollups(tmp_path: Path) -> None:
    migrated_to(tmp_path / "analytics.db", 3)
    events = rotating_events(400, 6)
    store = SqliteAnalyticsStore(tmp_path / "analytics.db")
    store.open()
    write(store, in_chunks(events, 6))
    store.close()
    with sqlite3.connect(tmp_path / "analytics.db") as conn:  # back to how 0003 left it
        for table in TABLES[TABLES.index("day_totals") :]:
            conn.execute(f"DROP TABLE {table}")  # noqa: S608
        conn.execute("DELETE FROM schema_migrations WHERE version > 3")
    store.open()
    with store.reader.locked() as conn:
        assert conn.execute("SELECT count(*) FROM dirty_days").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM day_totals").fetchone()[0] >= DAYS
    assert fast_ranges(store) >= len(ranges()) // 2
    store.close()
