"""The rebuild's entity-ordered build: the ledger times it computes in its first pass, and the
copy it builds, equal what the position-ordered fold (a worker's) computes — also when
processes with different clocks wrote, so that recorded times go backwards along positions.
(The property test in test_projection_properties.py compares whole copies on random histories.)
"""

from __future__ import annotations

import pytest

from domain.application import Ledger
from domain.ids import task_id
from projections import entity_order
from projections.db import Db
from projections.rebuild import rebuild
from projections.runner import Runner, decode_page
from tests.behaviour.helpers import OPERATOR
from tests.behaviour.projection_helpers import digests, issue_small, live_generations
from tests.conftest import FakeClock


@pytest.fixture
def two_clocks(store_url):
    """The small ledger written by two processes whose clocks disagree by two hours."""
    ahead, behind = FakeClock("2021-09-01 10:00"), FakeClock("2021-09-01 08:00")
    first, second = Ledger(store_url, clock=ahead), Ledger(store_url, clock=behind)
    try:
        directive = issue_small(first).entity_id
        for round_ in range(3):
            for ordinal, writer in (("1", second), ("3", first), ("4", second)):
                writer.report_progress(OPERATOR, task_id(directive, ordinal),
                                       summary=f"Đợt {round_ + 1}")
            ahead.advance(minutes=20)
            behind.advance(minutes=50)  # overtakes the other clock in the last round
        yield first
    finally:
        first.close()
        second.close()


def test_first_pass_ledger_times_are_the_running_maximum_of_recorded_times(two_clocks):
    ledger = two_clocks
    db = Db(ledger)
    head = db.head_position()
    notes = ledger.recorder.select_notifications(start=1, limit=head)
    expected = {position: text for position, _, text in decode_page(ledger, notes, None)}
    recorded = [ledger.mapper.to_domain_event(n).timestamp for n in notes]
    assert recorded != sorted(recorded)  # the case that needs the running maximum

    times = entity_order.ledger_times(db, head, page=4)  # several pages
    assert {p: times.at[p] for p in expected} == expected
    assert times.last == notes[-1].id and times.events == len(notes)
    assert times.end == expected[notes[-1].id]


def test_first_pass_decodes_whole_events_when_the_state_has_another_layout(two_clocks,
                                                                          monkeypatch):
    db = Db(two_clocks)
    head = db.head_position()
    quick = entity_order.ledger_times(db, head)
    monkeypatch.setattr(entity_order, "_TIMESTAMP_HEAD", b'{"not":"this layout"')
    assert entity_order.ledger_times(db, head).at == quick.at


@pytest.mark.parametrize("page_size", [1, 5, 5000])
def test_a_rebuild_in_entity_order_equals_the_fold_in_position_order(two_clocks, page_size):
    ledger = two_clocks
    Runner(ledger, page_size=3).catch_up()
    before = digests(ledger, live_generations(ledger))
    result = rebuild(ledger, page_size=page_size, grace=0)
    assert all(r["position"] == Db(ledger).head_position() for r in result.values())
    assert digests(ledger, live_generations(ledger)) == before  # every version, every column
