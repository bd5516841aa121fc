"""Automatic garbage collection paused while read queries run, resumed when the last ends."""

from __future__ import annotations

import gc
import threading

import pytest

from projections import collector_pause
from projections.collector_pause import MAX_PAUSE, collection_paused
from tests.conftest import MonotonicClock


@pytest.fixture(autouse=True)
def collector_on():
    was = gc.isenabled()
    gc.enable()
    yield
    assert collector_pause._running == 0
    (gc.enable if was else gc.disable)()


def test_paused_inside_and_resumed_after():
    with collection_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_resumed_only_when_the_last_overlapping_query_ends():
    clock = MonotonicClock()
    first, second = collection_paused(clock), collection_paused(clock)
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert not gc.isenabled()  # the second still runs
    second.__exit__(None, None, None)
    assert gc.isenabled()


def test_resumed_after_max_pause_under_a_stream_of_overlapping_queries():
    clock = MonotonicClock()
    running = collection_paused(clock)
    running.__enter__()
    with collection_paused(clock):
        clock.now += MAX_PAUSE + 0.1
    assert gc.isenabled()  # overdue: resumed by the query that ended, though one still runs
    with collection_paused(clock):
        assert gc.isenabled()  # not paused again until no query runs
    running.__exit__(None, None, None)
    assert gc.isenabled()
    with collection_paused(clock):
        assert not gc.isenabled()  # a fresh start pauses again


def test_a_collector_disabled_by_someone_else_stays_disabled():
    gc.disable()
    with collection_paused():
        pass
    assert not gc.isenabled()


def test_resumed_when_the_query_fails():
    with pytest.raises(RuntimeError), collection_paused():
        raise RuntimeError("the query failed")
    assert gc.isenabled()


def test_threads_leave_it_resumed():
    start = threading.Barrier(8)

    def query() -> None:
        start.wait()
        for _ in range(200):
            with collection_paused():
                pass

    threads = [threading.Thread(target=query) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert gc.isenabled()
