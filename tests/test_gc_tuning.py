"""The processor's garbage-collector settings still free reference cycles on their own."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from appliance.core.gc_tuning import GEN0_THRESHOLD, tune_for_throughput


@pytest.fixture
def tuned() -> Iterator[None]:
    before = gc.get_threshold()
    tune_for_throughput()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


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
