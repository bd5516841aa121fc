"""The worker's garbage-collector pacing: automatic collections off while it runs, a full
collection when idle long enough or after long enough under load, and nothing else changed."""

from __future__ import annotations

import gc

from projections.runner import PacedCollector
from tests.conftest import MonotonicClock


def test_automatic_collection_is_off_inside_and_restored_after():
    assert gc.isenabled()
    with PacedCollector(clock=MonotonicClock()):
        assert not gc.isenabled()
    assert gc.isenabled()


def test_a_full_collection_when_idle_long_enough_or_busy_too_long():
    clock = MonotonicClock()
    with PacedCollector(idle_every=60, busy_every=600, clock=clock) as collector:
        clock.now += 59
        collector.after_round(0)  # idle, but a full collection ran less than a minute ago
        collector.after_round(500)
        assert collector.full_collections == 0
        clock.now += 1
        collector.after_round(500)  # busy: the young generations only
        assert collector.full_collections == 0
        collector.after_round(0)  # idle for the first time in a minute
        assert collector.full_collections == 1
        for _ in range(10):  # constant load for ten minutes
            clock.now += 60
            collector.after_round(500)
        assert collector.full_collections == 2
        collector.after_round(0)  # idle right after one: not again
        assert collector.full_collections == 2


def test_cycles_left_by_a_round_are_freed_by_a_later_full_collection():
    class Node:
        def __init__(self) -> None:
            self.other = self

    def cycles() -> int:
        return sum(type(o) is Node for o in gc.get_objects())

    clock = MonotonicClock()
    with PacedCollector(idle_every=60, clock=clock) as collector:
        node = Node()  # a cycle: reference counting alone never frees it
        gc.collect()  # it survives into the oldest generation, like a cached entity
        del node
        clock.now += 59
        collector.after_round(0)  # the young generations only: it stays
        assert cycles() == 1
        clock.now += 1
        collector.after_round(0)
        assert cycles() == 0
