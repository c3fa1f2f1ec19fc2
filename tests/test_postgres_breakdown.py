"""The embedded store's visit and breakdown scenario, replayed against the Postgres store:
with hll sketches (rollups), without them (exact, raw rows), and flushed one event at a time
(visits continued across flushes)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from appliance.core.aggregation import aggregate
from appliance.core.transport import Offset, Position
from plugins.store_postgres.analytics import PostgresAnalyticsStore
from tests.postgres_server import database, fresh_database
from tests.test_breakdown import (  # noqa: F401 (collected here, run with this module's store)
    scenario_events,
    test_entry_exit_and_visit_level_breakdowns,
    test_filters_select_visits,
    test_page_and_event_breakdowns,
    test_visits_split_after_thirty_idle_minutes,
)


@pytest.fixture(
    params=[("sketches", "one flush"), ("exact", "one flush"), ("sketches", "event by event")],
    ids=lambda param: "-".join(param).replace(" ", "-"),
)
def store(request: pytest.FixtureRequest) -> Iterator[PostgresAnalyticsStore]:
    mode, flushes = request.param
    with fresh_database(sketches=mode == "sketches") as dsn:
        opened = PostgresAnalyticsStore(database(dsn))
        opened.open()
        assert opened.sketches.enabled is (mode == "sketches")
        # In time order, with offsets in that order, as the processor would see them.
        events = sorted(scenario_events(), key=lambda event: event.ts)
        offsets = [Offset("t", "0", i) for i in range(len(events))]
        groups = (
            [range(len(events))] if flushes == "one flush" else [[i] for i in range(len(events))]
        )
        for group in groups:
            chosen = [events[i] for i in group]
            positions = [Position("t", "0", group[0], group[-1])]
            assert opened.write_batch(aggregate(chosen, positions, [offsets[i] for i in group]))
        yield opened
        opened.close()
