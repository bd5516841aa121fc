"""The table of overview answers shared by the server processes (service/shared_answers.py),
on both stores: one claim at a time, answers read back as published, a newer answer never
replaced by an older one, a waiter given the answer another process publishes."""

from __future__ import annotations

from datetime import date

import pytest

from domain.application import Ledger
from service.read_models import Answer
from service.shared_answers import FORGET_AFTER_SECONDS, SharedAnswers
from service.storage import ServiceTables
from tests.conftest import MonotonicClock

QUERY = ("obligation_counts", None, date(2026, 12, 4))
OTHER_QUERY = ("accountability", "2026", None, None, date(2026, 12, 4))


@pytest.fixture
def wall() -> MonotonicClock:
    """Wall-clock seconds under test control (the shared answers' clock)."""
    return MonotonicClock(1_000_000.0)


@pytest.fixture
def tables(store_url, clock):
    ledger = Ledger(store_url, clock=clock)
    try:
        tables = ServiceTables(ledger)
        tables.create()
        yield tables
    finally:
        ledger.close()


def _shared(tables, wall, **kwargs) -> SharedAnswers:
    shared = SharedAnswers(tables, clock=wall, **kwargs)
    shared.create()
    return shared


def test_an_answer_is_read_back_as_published(tables, wall):
    shared = _shared(tables, wall)
    assert shared.fetch(QUERY) is None
    answer = Answer.of(("{\"agencies\": \"Sở Tài chính\"}" * 100).encode())
    assert answer.gzipped is not None
    shared.publish(QUERY, (3, 1234), answer, computed_at=wall.now - 2, took=1.5)
    wall.now += 1
    found = shared.fetch(QUERY)
    assert found.answer == answer and found.token == (3, 1234) and found.position == 1234
    assert found.took == 1.5
    assert shared.age(found) == pytest.approx(3.0)
    assert shared.fetch(OTHER_QUERY) is None
    small = Answer(b"{}")
    shared.publish(OTHER_QUERY, (3, 1), small)
    assert shared.fetch(OTHER_QUERY).answer == small  # (no gzipped copy)


def test_one_process_at_a_time_claims_a_query_until_it_publishes(tables, wall):
    first, second = _shared(tables, wall), _shared(tables, wall)
    assert first.claim(QUERY)
    assert not second.claim(QUERY) and second.claimed(QUERY)
    assert second.claim(OTHER_QUERY)  # claims are per query
    first.publish(QUERY, (1, 10), Answer(b"[1]"))
    assert not second.claimed(QUERY) and second.claim(QUERY)
    second.release(QUERY)
    assert first.claim(QUERY)


def test_a_claim_lapses_after_its_lease(tables, wall):
    """A process that died while computing holds the others back for the lease at most."""
    first, second = _shared(tables, wall, lease=30), _shared(tables, wall, lease=30)
    assert first.claim(QUERY)
    wall.now += 29
    assert not second.claim(QUERY)
    wall.now += 1
    assert second.claim(QUERY)


def test_a_claim_holds_twice_as_long_as_the_last_computation_took(tables, wall):
    """A computation longer than the lease must not be started again by a second process
    while the first still runs it; a dead claimant still holds the others back only so
    long."""
    first, second = _shared(tables, wall, lease=30), _shared(tables, wall, lease=30)
    assert first.claim(QUERY, last_took=40)
    wall.now += 79
    assert not second.claim(QUERY, last_took=40)
    wall.now += 1
    assert second.claim(QUERY, last_took=40)
    second.release(QUERY)
    assert first.claim(QUERY, last_took=5)  # a short computation: the lease, no less
    wall.now += 29
    assert not second.claim(QUERY)
    wall.now += 1
    assert second.claim(QUERY)


def test_an_older_answer_never_replaces_a_newer_one(tables, wall):
    """Two computations overlap (one claim lapsed): the one that started later stays."""
    shared = _shared(tables, wall)
    shared.publish(QUERY, (1, 20), Answer(b"[20]"), computed_at=wall.now)
    shared.publish(QUERY, (1, 10), Answer(b"[10]"), computed_at=wall.now - 5)
    assert shared.fetch(QUERY).answer.body == b"[20]"
    shared.publish(QUERY, (1, 30), Answer(b"[30]"), computed_at=wall.now + 1)
    assert shared.fetch(QUERY).token == (1, 30)


def test_answers_not_asked_for_in_two_days_are_forgotten(tables, wall):
    shared = _shared(tables, wall)
    shared.publish(OTHER_QUERY, (1, 1), Answer(b"[]"))
    wall.now += FORGET_AFTER_SECONDS - 1
    shared.publish(QUERY, (1, 2), Answer(b"[]"))
    assert shared.fetch(OTHER_QUERY) is not None
    wall.now += 2
    shared.publish(QUERY, (1, 3), Answer(b"[]"))
    assert shared.fetch(OTHER_QUERY) is None and shared.fetch(QUERY).token == (1, 3)


def test_a_waiter_gets_the_answer_the_claimant_publishes(tables, wall):
    claimant = _shared(tables, wall)
    claimant.publish(QUERY, (1, 5), Answer(b"[5]"))
    last = claimant.fetch(QUERY).computed_at
    wall.now += 15
    assert claimant.claim(QUERY)
    polls = []

    def meanwhile(seconds: float) -> None:  # the waiter's sleep: the claimant finishes
        polls.append(seconds)
        wall.now += seconds
        if len(polls) == 3:
            claimant.publish(QUERY, (1, 9), Answer(b"[9]"), computed_at=wall.now - 0.2)

    waiter = _shared(tables, wall, sleep=meanwhile)
    newer = waiter.await_newer(QUERY, than=last)
    assert newer.token == (1, 9) and len(polls) == 3


def test_a_waiter_gives_up_when_the_claim_ends_without_an_answer(tables, wall):
    claimant = _shared(tables, wall, lease=1)
    claimant.publish(QUERY, (1, 5), Answer(b"[5]"))
    last = claimant.fetch(QUERY).computed_at
    assert claimant.claim(QUERY)

    def meanwhile(seconds: float) -> None:
        wall.now += seconds

    waiter = _shared(tables, wall, sleep=meanwhile)
    assert waiter.await_newer(QUERY, than=last) is None  # the lease lapsed
    assert claimant.claim(QUERY)
    claimant.release(QUERY)  # a failed computation
    assert _shared(tables, wall, sleep=meanwhile).await_newer(QUERY, than=last) is None
