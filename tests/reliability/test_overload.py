"""Overload is not an outage: many slow read-model queries at once must neither compute the
same answer many times nor exhaust the connection pool and trip the store breaker (which
answers every request 503 until the next probe). Found by benchmark 3 at 200,000 events:
68 reads answered 503 `store-unavailable` while PostgreSQL was up."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from eventsourcing.persistence import OperationalError

from domain.persistence.breaker import install_breaker
from service.read_models import Answer, AnswerCache, stretched


def test_identical_queries_arriving_together_are_computed_once():
    cache = AnswerCache()
    started, release = threading.Event(), threading.Event()
    calls = []

    def slow_answer():
        calls.append(1)
        started.set()
        release.wait(10)
        return {"obligations": ["768/QĐ-UBND#1.1"]}

    with ThreadPoolExecutor(16) as pool:
        first = pool.submit(cache.get_or_compute, ("obligations", "QNG-STC"), slow_answer)
        assert started.wait(10)
        others = [pool.submit(cache.get_or_compute, ("obligations", "QNG-STC"), slow_answer)
                  for _ in range(15)]
        release.set()
        answers = {first.result(10).body, *(f.result(10).body for f in others)}
    assert len(calls) == 1
    assert answers == {'{"obligations":["768/QĐ-UBND#1.1"]}'.encode()}


def test_waiters_get_the_error_of_the_computation_they_waited_for():
    cache = AnswerCache()
    started, release = threading.Event(), threading.Event()

    def failing():
        started.set()
        release.wait(10)
        raise LookupError("unknown agency 'QNG-XYZ'")

    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(cache.get_or_compute, ("k",), failing)
        assert started.wait(10)
        waiter = pool.submit(cache.get_or_compute, ("k",), failing)
        release.set()
        for future in (first, waiter):
            with pytest.raises(LookupError, match="QNG-XYZ"):
                future.result(10)
    # Nothing was cached and nothing is left in flight: the next call computes again.
    assert cache.get_or_compute(("k",), lambda: {"ok": True}).body == b'{"ok":true}'


def test_at_most_concurrency_answers_are_computed_at_once():
    cache = AnswerCache(concurrency=2)
    running, most = 0, 0
    lock, release = threading.Lock(), threading.Event()

    def answer():
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        release.wait(0.2)
        with lock:
            running -= 1
        return {}

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(cache.get_or_compute, ("k", n), answer) for n in range(8)]
        for future in futures:
            future.result(10)
    assert most == 2


@pytest.mark.postgres
def test_a_busy_pool_does_not_trip_the_store_breaker(pg_schema_url):
    from domain.application import Ledger

    ledger = Ledger(f"{pg_schema_url}&pool_size=1&max_overflow=0&connect_timeout=1")
    try:
        datastore = ledger.recorder.datastore
        breaker = install_breaker(datastore)
        with datastore.get_connection():  # the only connection, held
            with pytest.raises(OperationalError):
                with datastore.get_connection():
                    pass  # pragma: no cover - the pool has nothing to give
        assert not breaker.is_open
        with datastore.get_connection() as conn:  # and the next request is served
            assert conn.execute("SELECT 1 AS one").fetchone()["one"] == 1
    finally:
        ledger.close()


def test_an_overview_is_sent_again_and_past_its_max_age_is_due_to_be_computed_again():
    """Each new event changes the freshness token, so an answer that takes seconds (every
    agency's counts at 1M: ~2.5 s) would be computed again per event; ``latest`` offers the
    last one for a while instead, then says it is due (still offered, to be computed again
    meanwhile), and forgets it at twice ``max_age``."""
    now = [100.0]
    cache = AnswerCache(size=2, clock=lambda: now[0])
    query = ("obligation_counts", None, "2026-12-04")
    assert cache.latest(query, 10) is None
    answer = cache.get_or_compute(("obligations", (1, 95), *query), lambda: {"n": 1})
    cache.remember(query, (1, 95), answer)
    now[0] += 9.9
    assert cache.latest(query, 10) == ((1, 95), answer, False)
    now[0] += 0.1
    assert cache.latest(query, 10) == ((1, 95), answer, True)
    now[0] += 9.9
    assert cache.latest(query, 10) == ((1, 95), answer, True)
    now[0] += 0.1
    assert cache.latest(query, 10) is None
    cache.remember(query, (1, 95), answer)  # found current again: its age starts again
    assert cache.latest(query, 10) == ((1, 95), answer, False)
    for day in ("2026-12-05", "2026-12-06"):  # bounded like the answers
        cache.remember(("obligation_counts", None, day), (1, 96), answer)
    assert cache.latest(("obligation_counts", None, "2026-12-05"), 10) is not None
    cache.remember(query, (1, 96), answer)
    assert cache.latest(("obligation_counts", None, "2026-12-05"), 10) is None  # evicted


def test_an_overview_s_window_stretches_with_the_time_it_took_to_compute():
    """An answer that took longer than a third of the window to compute is not due until
    three times that (``OVERVIEW_STRETCH``): otherwise one that takes as long as the window
    would be computed without pause."""
    now = [100.0]
    cache = AnswerCache(clock=lambda: now[0])
    quick, slow = ("obligation_counts", None, "2026-12-04"), ("accountability", "2026")
    answer = Answer(b"{}")
    cache.remember(quick, (1, 95), answer, took=3.0)  # 3 × 3 s < 10 s: the window holds
    cache.remember(slow, (1, 95), answer, took=10.0)  # 3 × 10 s
    now[0] += 10
    assert cache.latest(quick, 10)[2] and not cache.latest(slow, 10)[2]
    now[0] += 20
    assert cache.latest(quick, 10) is None and cache.latest(slow, 10)[2]
    now[0] += 30
    assert cache.latest(slow, 10) is None
    assert stretched(10, 2) == 10 and stretched(10, 5) == 15


def test_an_overview_is_computed_again_on_one_thread_however_many_find_it_due():
    """Dashboards that find the overview due all get the answer they had, at once; one
    thread computes the next. A refresh that fails is logged, and the next is let run."""
    cache = AnswerCache()
    query = ("accountability", "2024", None, None, "2026-12-04")
    started, release = threading.Event(), threading.Event()
    runs = []

    def refresh():
        runs.append(threading.current_thread().name)
        started.set()
        release.wait(10)

    assert cache.revalidate(query, refresh)
    assert started.wait(10)
    assert not any(cache.revalidate(query, refresh) for _ in range(20))
    release.set()
    for _ in range(200):  # the thread lets go of the query as it ends
        if cache.revalidate(query, lambda: 1 / 0):
            break
        threading.Event().wait(0.01)
    else:
        raise AssertionError("the first refresh never let go of its query")
    ran = threading.Event()
    for _ in range(200):  # and so does a failed one
        if cache.revalidate(query, ran.set):
            break
        threading.Event().wait(0.01)
    else:
        raise AssertionError("a failed refresh never let go of its query")
    assert ran.wait(10) and runs == ["overview-refresh"]
