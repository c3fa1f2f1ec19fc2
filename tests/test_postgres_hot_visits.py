"""Extending a visit is a heap-only (HOT) update, and databases from before that upgrade.

Each flush updates the visits it extended; an update that changes an indexed column (the
old visits_open indexed last_ts) writes a new entry into every index of the table.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from appliance.core.aggregation import aggregate
from appliance.core.event import Event
from appliance.core.transport import Offset, Position
from plugins.store_postgres import migrate as migrate_module
from plugins.store_postgres import writer
from plugins.store_postgres.analytics import TUNING, PostgresAnalyticsStore
from tests.postgres_server import database, fresh_database
from tests.test_postgres_store import (
    SITE,
    T0,
    known_load,
    visits_of_one_writer,
    visits_rows,
    write_in_flushes,
)


@pytest.fixture
def dsn() -> Iterator[str]:
    with fresh_database() as fresh:
        yield fresh


def batch_of(events: list[Event], first: int) -> object:
    last = first + len(events) - 1
    offsets = [Offset("t", "0", first + i) for i in range(len(events))]
    return aggregate(events, [Position("t", "0", first, last)], offsets)


def pageview(event_id: str, ts: float, session: str, path: str) -> Event:
    return Event(
        event_id=event_id, ts=ts, site_id=SITE, name="pageview", path=path, session_id=session
    )


def test_extending_open_visits_writes_no_index_entries(dsn: str) -> None:
    store = PostgresAnalyticsStore(database(dsn))
    store.open()
    started = [pageview(f"a{s}", T0 + s, f"s{s}", "/") for s in range(100)]
    store.write_batch(batch_of(started, 0))
    # A page has room for the new versions of about a quarter of its rows (fillfactor 75);
    # their old versions are pruned once no transaction can see them, for the next flushes.
    sessions = range(0, 100, 4)
    later = [pageview(f"b{s}", T0 + 60 + s, f"s{s}", "/next") for s in sessions]
    with store.db.connection(TUNING) as conn:
        writer.write(conn, batch_of(later, len(started)), store.sketches, store.open_visits)
        # This transaction's own counts, before the statistics collector sees them.
        updated, hot = conn.execute(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relname = 'visits'"
        ).fetchone()
    assert updated == len(sessions)
    assert hot == updated
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT last_ts, pageviews, exit_page FROM visits WHERE pageviews > 1 ORDER BY first_ts"
        ).fetchall()
    assert rows == [(T0 + 60 + s, 2, "/next") for s in sessions]
    store.close()


def test_a_database_from_before_upgrades_and_closes_its_open_visits(
    dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Written at migration 0003, upgraded, written on: the visits come out as a database
    made at the newest migration makes them."""
    events = known_load(1500)
    expected = visits_of_one_writer(events, 100)
    every = migrate_module.scripts
    monkeypatch.setattr(
        migrate_module, "scripts", lambda track: [s for s in every(track) if s[0] <= 3]
    )
    old = PostgresAnalyticsStore(database(dsn))
    old.open()
    write_in_flushes(old, events[:700], 100)
    old.close()
    monkeypatch.setattr(migrate_module, "scripts", every)
    upgraded = PostgresAnalyticsStore(database(dsn))
    upgraded.open()
    with psycopg.connect(dsn) as conn:
        index = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'visits_open'"
        ).fetchone()
        options = conn.execute(
            "SELECT reloptions FROM pg_class WHERE relname = 'visits'"
        ).fetchone()
    assert index is not None and "(site_id, first_ts) WHERE (NOT closed)" in index[0]
    assert options == (["fillfactor=75"],)
    rest = events[700:]
    for first in range(0, len(rest), 100):
        upgraded.write_batch(batch_of(rest[first : first + 100], 700 + first))
    assert visits_rows(dsn) == expected
    assert any(row[-1] for row in expected) and not all(row[-1] for row in expected)
    upgraded.close()
