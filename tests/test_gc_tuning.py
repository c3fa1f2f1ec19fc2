"""The processor's garbage-collector settings still free reference cycles on their own."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from appliance.core.gc_tuning import GEN0_THRESHOLD, GEN1_THRESHOLD, tuned_for_throughput


@pytest.fixture
def tuned() -> Iterator[None]:
    with tuned_for_throughput():
        yield


class Node:
    def __init__(self) -> None:
        self.me = self


def test_cycles_are_freed_without_an_explicit_collect(tuned: None) -> None:
    assert gc.get_threshold()[0] == GEN0_THRESHOLD
    cycle = weakref.ref(Node())
    assert cycle() is not None  # reference counting alone cannot free it
    allocated = [[] for _ in range(GEN0_THRESHOLD + 1)]  # a flush's worth of containers
    assert len(allocated) > GEN0_THRESHOLD
    assert cycle() is None


def test_a_cycle_that_outlived_a_young_collection_is_freed_within_a_million_allocations(
    tuned: None,
) -> None:
    assert GEN0_THRESHOLD * GEN1_THRESHOLD <= 1_000_000  # the bound this test relies on
    node = Node()
    cycle = weakref.ref(node)
    survivors = [[] for _ in range(GEN0_THRESHOLD + 1)]  # a young collection runs: it survives
    del node
    assert cycle() is not None  # garbage now, but in the middle generation
    more = [[] for _ in range(GEN0_THRESHOLD * (GEN1_THRESHOLD + 1))]
    assert len(survivors) + len(more) > GEN0_THRESHOLD * GEN1_THRESHOLD
    assert cycle() is None


def test_a_flushs_visit_objects_are_not_tracked_by_the_collector() -> None:
    """Each young collection during a Postgres flush walked every visit change made so far."""
    from appliance.core.event import Event
    from plugins.store_postgres.visits import assign

    events = [
        Event(event_id=f"e{i}", ts=1_790_000_000.0 + i, site_id=1, name="pageview",
              path=f"/{i % 3}", visitor_id="v", session_id=f"s{i % 4}")
        for i in range(12)
    ]  # fmt: skip
    assignment = assign(events, {1: {"s0": (7, 1_790_000_000.0, 1_790_000_000.0)}})
    assert len(assignment.changes) == 4
    assert not any(gc.is_tracked(change) for change in assignment.changes)
