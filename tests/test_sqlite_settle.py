"""When the SQLite store recounts its per-UTC-day rollups (store_sqlite/daily.py): in parts
spread over flushes, not today's at start-up, and what migration 0006 dropped."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from appliance.core.aggregation import DAY, HOUR
from appliance.core.event import Event
from plugins.store_sqlite import daily
from plugins.store_sqlite.analytics import SqliteAnalyticsStore
from tests.test_sqlite_visits import SITE, T0, migrated_to, write
from tests.test_sqlite_whole_days import assert_unfiltered_same

ROLLUPS = ("day_totals", "day_values", "day_slots")


def day_events(day: int, tag: str, count: int = 120) -> list[Event]:
    """Visits between 06:00 and 18:00 UTC of `day`, ids of that day (none crosses midnight)."""
    events = []
    for n in range(count):
        person = f"d{day // DAY}-p{n % 17}"
        events.append(
            Event(event_id=f"{tag}{n}", ts=day + 6 * HOUR + n * 337.5, site_id=SITE,
                  name="Signup" if n % 9 == 0 else "pageview", path=f"/{n % 5}",
                  visitor_id=person, session_id=person, browser=("Firefox", "Chrome")[n % 2],
                  country=("DE", "IN", "")[n % 3], referrer_source=("", "Google")[n % 2])
        )  # fmt: skip
    return events


def dirty(store: SqliteAnalyticsStore) -> dict[int, int]:
    with store.reader.locked() as conn:
        return dict(conn.execute("SELECT day, done FROM dirty_days WHERE site_id = ?", (SITE,)))


def rollups(store: SqliteAnalyticsStore) -> list[list[tuple]]:
    with store.reader.locked() as conn:
        return [sorted(tuple(row) for row in conn.execute(f"SELECT * FROM {table}"))  # noqa: S608
                for table in ROLLUPS]  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> SqliteAnalyticsStore:
    opened = SqliteAnalyticsStore(tmp_path / "analytics.db")
    opened.open()
    opened.settle_share = opened.settle_min_s = 0  # one part per flush
    yield opened
    opened.close()


def test_a_recount_spreads_over_flushes_and_restarts_when_its_day_changes(
    store: SqliteAnalyticsStore,
) -> None:
    yesterday, start, end = T0 - DAY, T0 - DAY, T0 + DAY
    write(store, [day_events(yesterday, "y")])
    today = day_events(T0, "t", 3 * len(daily.PARTS))
    flushes = iter([[event] for event in today])
    assert dirty(store) == {yesterday: 0}
    for done in range(1, 4):  # one part per flush; answers stay exact meanwhile
        write(store, [next(flushes)])
        assert dirty(store) == {yesterday: done, T0: 0}
        assert_unfiltered_same(store, start, end, [start, T0])
    late = Event(event_id="late", ts=yesterday + 20 * HOUR, site_id=SITE, name="pageview",
                 path="/late", visitor_id="late", session_id="late")  # fmt: skip
    write(store, [[late]])
    assert dirty(store)[yesterday] == 0  # the day changed: its recount starts over
    for _ in daily.PARTS:
        write(store, [next(flushes)])
    assert yesterday not in dirty(store)
    assert_unfiltered_same(store, start, end, [start, T0])
    assert store.top_pages(SITE, yesterday, T0, 10)[-1].path == "/late"
    spread = rollups(store)
    with store.writer.transaction() as conn:  # the same day recounted in one go
        conn.execute("INSERT INTO dirty_days (site_id, day) VALUES (?, ?)", (SITE, yesterday))
        daily.settle(conn, T0)
    assert rollups(store) == spread


def test_open_recounts_older_days_but_not_today(tmp_path: Path) -> None:
    today = daily.day_of(time.time())
    store = SqliteAnalyticsStore(tmp_path / "analytics.db")
    store.open()
    write(store, [day_events(today - DAY, "y") + day_events(today, "t")])  # both dirty
    assert set(dirty(store)) == {today - DAY, today}
    store.close()
    store.open()
    try:
        if daily.day_of(time.time()) != today:
            pytest.skip("the UTC day changed during the test")
        assert set(dirty(store)) == {today}  # the next flush would mark it again
        assert_unfiltered_same(store, today - DAY, today + DAY, [today - DAY, today])
    finally:
        store.close()


def test_migration_drops_the_rollups_nothing_read(tmp_path: Path) -> None:
    unread = ("rollup_minute", "rollup_hour", "custom_events_hour")
    migrated_to(tmp_path / "analytics.db", 5)
    with sqlite3.connect(tmp_path / "analytics.db") as conn:
        conn.execute("INSERT INTO rollup_minute VALUES (1, 0, '/', 1, 1)")
        conn.execute("INSERT INTO dirty_days VALUES (1, ?)", (T0 - DAY,))
    store = SqliteAnalyticsStore(tmp_path / "analytics.db")
    store.open()
    try:
        with store.reader.locked() as conn:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
            assert not tables & set(unread)
            assert conn.execute("SELECT count(*) FROM dirty_days").fetchone()[0] == 0
        write(store, [day_events(T0 - DAY, "y"), day_events(T0, "t")])
        assert_unfiltered_same(store, T0 - DAY, T0 + DAY, [T0 - DAY, T0])
    finally:
        store.close()
