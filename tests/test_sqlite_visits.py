"""The embedded store's visits table: every stat equals a rebuild of the range's raw events
(tests/sqlite_rebuild.py, the queries it replaced), whatever the flushes and arrival order."""

from __future__ import annotations

import random
import shutil
import sqlite3
from pathlib import Path

import pytest

from appliance.core.aggregation import DAY, HOUR, aggregate
from appliance.core.event import Event
from appliance.core.filters import PROPERTIES, Filter
from appliance.core.transport import Offset, Position
from plugins.store_sqlite.analytics import MIGRATIONS, SqliteAnalyticsStore
from plugins.store_sqlite.db import Database, migrate
from tests import sqlite_rebuild

T0 = 1_790_035_200  # 2026-09-22 00:00 UTC: a midnight
SITE = 1
SELECTIONS: list[tuple[Filter, ...]] = [
    (), (Filter("browser", "==", "Firefox"),), (Filter("page", "==", "/docs"),),
    (Filter("event", "!=", "Signup"), Filter("country", "!=", "")),
    (Filter("entry_page", "==", "/"), Filter("page", "!=", "/blog")),
]  # fmt: skip


def event(
    n: int | str, ts: float, session: str, name: str = "pageview", path: str = "/", **more
) -> Event:
    return Event(event_id=f"e{n}", ts=ts, site_id=SITE, name=name, path=path,
                 visitor_id=more.pop("visitor_id", f"v-{session}"), session_id=session,
                 **more)  # fmt: skip


def random_events(count: int, seed: int, prefix: str = "") -> list[Event]:
    """Sessions around T0 with pauses over and under 30 minutes, and custom events. Times are
    distinct: on ties the rebuild's first/last event depends on its query plan."""
    rng = random.Random(seed)
    events = []
    for n in range(count):
        session = f"s{rng.randrange(12)}"
        ts = T0 + rng.choice([-1, 1]) * rng.randrange(0, 5 * HOUR, rng.choice([1, 60, 900, 1700]))
        custom = rng.random() < 0.15
        events.append(
            event(f"{prefix}{n}", ts + n / 1024, session,
                  rng.choice(["Signup", "Download"]) if custom else "pageview",
                  rng.choice(["/", "/docs", "/blog", "/a b"]),
                  visitor_id=f"v{rng.randrange(8)}", browser=rng.choice(["Firefox", "Chrome"]),
                  country=rng.choice(["DE", "", "FR"]), referrer_source=rng.choice(["", "Google"]),
                  screen_width=rng.choice([0, 390, 1500]),
                  props={"plan": rng.choice(["a", "b"])} if custom else {})
        )  # fmt: skip
    return events


def write(store: SqliteAnalyticsStore, chunks: list[list[Event]], topic: str = "t") -> None:
    offset = store.applied_positions(topic).get("0", -1) + 1
    for chunk in chunks:
        offsets = [Offset(topic, "0", offset + i) for i in range(len(chunk))]
        store.write_batch(
            aggregate(chunk, [Position(topic, "0", offset, offset + len(chunk) - 1)], offsets)
        )
        offset += len(chunk)


def assert_same_as_rebuild(store: SqliteAnalyticsStore, start: int, end: int) -> None:
    conn = store.reader._conn
    hours = list(range(start, end, HOUR))
    days = [start, *range((start // DAY + 1) * DAY, end, DAY)]
    for filters in SELECTIONS:
        assert store.kpis(SITE, start, end, filters) == sqlite_rebuild.kpis(
            conn, SITE, start, end, filters
        )
        for buckets in (hours, days):
            ours = store.timeseries(SITE, buckets, end, filters)
            assert ours == sqlite_rebuild.timeseries(conn, SITE, buckets, end, filters)
        ours = store.top_pages(SITE, start, end, 3, filters)
        assert ours == sqlite_rebuild.top_pages(conn, SITE, start, end, 3, filters)
        for prop in PROPERTIES:
            ours = store.breakdown(SITE, start, end, prop, 50, filters)
            assert ours == sqlite_rebuild.breakdown(conn, SITE, start, end, prop, 50, filters), prop
        ours = store.event_properties(SITE, start, end, "Signup", 10, filters)
        assert ours == sqlite_rebuild.event_properties(
            conn, SITE, start, end, "Signup", 10, filters
        )


def visit_rows(store: SqliteAnalyticsStore) -> list[tuple]:
    with store.reader.locked() as conn:
        return [
            tuple(row) for row in conn.execute("SELECT * FROM visits ORDER BY first_ts, visit_id")
        ]


@pytest.fixture
def store(tmp_path: Path) -> SqliteAnalyticsStore:
    opened = SqliteAnalyticsStore(tmp_path / "analytics.db")
    opened.open()
    yield opened
    opened.close()


def test_a_visit_spanning_two_flushes_is_one_visit(store: SqliteAnalyticsStore) -> None:
    write(store, [[event(1, T0, "s", path="/a")], [event(2, T0 + 600, "s", path="/b")]])
    kpis = store.kpis(SITE, T0 - HOUR, T0 + HOUR, ())
    assert (kpis.sessions, kpis.pageviews, kpis.bounce_rate, kpis.avg_duration_s) == (
        1,
        2,
        0.0,
        600.0,
    )
    [entry] = store.breakdown(SITE, T0 - HOUR, T0 + HOUR, "entry_page", 10, ())
    [exit_] = store.breakdown(SITE, T0 - HOUR, T0 + HOUR, "exit_page", 10, ())
    assert (entry.value, exit_.value) == ("/a", "/b")


def test_a_late_event_bridging_two_visits_merges_them(store: SqliteAnalyticsStore) -> None:
    write(store, [[event(1, T0, "s", path="/a"), event(2, T0 + 3000, "s", path="/c")]])
    assert store.kpis(SITE, T0 - HOUR, T0 + 2 * HOUR, ()).sessions == 2
    write(store, [[event(3, T0 + 1500, "s", path="/b"), event(4, T0 - 60, "s", path="/z")]])
    assert len(visit_rows(store)) == 1
    assert_same_as_rebuild(store, T0 - HOUR, T0 + 2 * HOUR)
    [entry] = store.breakdown(SITE, T0 - HOUR, T0 + 2 * HOUR, "entry_page", 10, ())
    assert entry.value == "/z"


def test_out_of_order_events_in_one_batch(store: SqliteAnalyticsStore) -> None:
    events = [
        event(n, T0 + ts, "s", path=f"/{n}") for n, ts in enumerate([900, 0, 2000, 4000, 450])
    ]
    write(store, [events])
    assert [(row[4], row[5]) for row in visit_rows(store)] == [
        (T0, T0 + 2000),
        (T0 + 4000, T0 + 4000),
    ]
    assert_same_as_rebuild(store, T0 - HOUR, T0 + 2 * HOUR)


def test_a_visit_crossing_midnight_and_range_edges(store: SqliteAnalyticsStore) -> None:
    write(store, [[event(n, T0 - 1200 + n * 600, "s", path=f"/{n % 3}") for n in range(5)]])
    for start, end in ((T0 - DAY, T0 + DAY), (T0, T0 + DAY), (T0 - DAY, T0), (T0 - 600, T0 + 601)):
        assert_same_as_rebuild(store, start, end)
    assert store.kpis(SITE, T0, T0 + DAY, ()).sessions == 1
    assert store.kpis(SITE, T0 - DAY, T0, ()).pageviews == 2


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_arrival_order_and_flush_sizes_give_the_rebuilds_answers(
    store: SqliteAnalyticsStore, seed: int
) -> None:
    events = random_events(400, seed)
    rng = random.Random(seed)
    events.sort(key=lambda e: e.ts + rng.uniform(-2400, 2400))  # mostly in order, some late
    chunks, first = [], 0
    while first < len(events):
        size = rng.choice([1, 5, 40, 120])
        chunks.append(events[first : first + size])
        first += size
    write(store, chunks)
    for start, end in ((T0 - DAY, T0 + DAY), (T0, T0 + 3 * HOUR), (T0 - 5000, T0 + 2345)):
        assert_same_as_rebuild(store, start, end)


def test_redelivered_and_overlapping_batches_leave_visits_unchanged(
    store: SqliteAnalyticsStore,
) -> None:
    events = random_events(60, 9)
    write(store, [events[:40], events[40:]])
    before = visit_rows(store)
    first = aggregate(
        events[:40], [Position("t", "0", 0, 39)], [Offset("t", "0", i) for i in range(40)]
    )
    assert store.write_batch(first) is False
    overlapping = aggregate(
        events[30:60], [Position("t", "0", 30, 59)], [Offset("t", "0", i) for i in range(30, 60)]
    )
    assert store.write_batch(overlapping) is False
    assert visit_rows(store) == before
    assert_same_as_rebuild(store, T0 - DAY, T0 + DAY)


def migrated_to(path: Path, scripts: int) -> None:
    """A database at `path` as an older appliance left it: only the first migrations."""
    old = path.parent / "old-migrations"
    old.mkdir()
    for script in sorted(MIGRATIONS.glob("*.sql"))[:scripts]:
        shutil.copy(script, old)
    db = Database(path)
    migrate(db, old)
    db.close()


def test_migration_backfills_visits_of_an_old_database(tmp_path: Path) -> None:
    migrated_to(tmp_path / "analytics.db", 2)
    events = random_events(300, 4)
    with sqlite3.connect(tmp_path / "analytics.db") as conn:  # as the old flush wrote them
        conn.executemany(
            "INSERT INTO events (event_id, site_id, ts, name, path, visitor_id, session_id,"
            " referrer, referrer_source, url, title, utm_source, utm_medium, utm_campaign,"
            " browser, os, device, country, screen_width, screen_height, props)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, '', ?, '', '', '', '', '', ?, '', '', ?, ?, 0, ?)",
            [(e.event_id, e.site_id, e.ts, e.name, e.path, e.visitor_id, e.session_id,
              e.referrer_source, e.browser, e.country, e.screen_width,
              '{"plan": "a"}' if e.props else "{}") for e in events],
        )  # fmt: skip
    store = SqliteAnalyticsStore(tmp_path / "analytics.db")
    store.open()
    with store.reader.locked() as conn:
        assert conn.execute("SELECT count(*) FROM events WHERE visit_id = 0").fetchone()[0] == 0
    assert_same_as_rebuild(store, T0 - DAY, T0 + DAY)
    assert_same_as_rebuild(store, T0 - 1000, T0 + 7000)
    write(store, [random_events(100, 5, "new")])  # flushes extend backfilled visits
    assert_same_as_rebuild(store, T0 - DAY, T0 + DAY)
    store.close()


def test_events_go_in_a_few_statements_of_cached_sizes() -> None:
    """The flush inserts 2^k rows per statement: few steps, few statement texts."""
    from plugins.store_sqlite.analytics import _ROWS_PER_INSERT, _statement_sizes

    for rows in (0, 1, 3, 511, 512, 513, 1300, 20_000):
        sizes = _statement_sizes(rows)
        assert sum(sizes) == rows
        assert all(size & (size - 1) == 0 and size <= _ROWS_PER_INSERT for size in sizes)
        assert len(sizes) <= rows // _ROWS_PER_INSERT + 9


def test_a_filtered_series_finds_each_events_bucket_by_binary_search() -> None:
    """The nested CASEs of `_bucket_of` give the last start at or before a time."""
    from plugins.store_sqlite.queries import _bucket_of

    conn = sqlite3.connect(":memory:")
    for count in range(1, 10):
        starts = [100 * n + n * n for n in range(count)]
        for ts in range(starts[0], starts[-1] + 50, 7):
            sql = f"SELECT {_bucket_of('?1', starts)}, ?1"
            [(found, _)] = conn.execute(sql, (ts,)).fetchall()
            assert found == max(start for start in starts if start <= ts), (starts, ts)


def test_the_watermark_is_the_newest_event_of_any_site(store: SqliteAnalyticsStore) -> None:
    assert store.watermark() is None

    def view(name: str, site: int, ts: float) -> Event:
        return Event(event_id=name, ts=ts, site_id=site, name="pageview", path="/",
                     visitor_id="v", session_id="s")  # fmt: skip

    write(store, [[view("a", 1, T0 + 50), view("b", 3, T0 + 10), view("c", 7, T0 - 5)]])
    assert store.watermark() == T0 + 50
    write(store, [[view("late", 7, T0 + 99)]])
    assert store.watermark() == T0 + 99
