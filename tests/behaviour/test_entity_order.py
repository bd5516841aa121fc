"""The rebuild's entity-ordered build: the ledger times it computes in its first pass, and the
copy it builds, equal what the position-ordered fold (a worker's) computes — also when
processes with different clocks wrote, so that recorded times go backwards along positions.
(The property test in test_projection_properties.py compares whole copies on random histories.)
"""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest

from domain.application import Ledger
from domain.ids import task_id
from projections import entity_order
from projections.db import Db
from projections.rebuild import claim_generations, rebuild
from projections.runner import (
    Attached,
    Runner,
    decode_page,
    drop_tables,
    ensure_projections,
    projections_named,
)
from tests.behaviour.helpers import OPERATOR
from tests.behaviour.projection_helpers import digests, issue_small, live_generations
from tests.conftest import FakeClock


@pytest.fixture
def two_clocks(store_url):
    yield from _two_clocks(store_url)


@pytest.fixture
def two_clocks_pg(pg_schema_url):
    yield from _two_clocks(pg_schema_url)


def _two_clocks(store_url):
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
    assert {p: times.text(p) for p in expected} == expected
    assert times.last == notes[-1].id and times.events == len(notes)
    assert times.end == expected[notes[-1].id]

    until = notes[-3].id  # within a page: what comes after it is not counted
    times = entity_order.ledger_times(db, until, page=4)
    assert times.last == until and times.events == len(notes) - 2
    assert times.end == expected[until]


def test_first_pass_decodes_whole_events_when_the_state_has_another_layout(two_clocks,
                                                                          monkeypatch):
    db = Db(two_clocks)
    head = db.head_position()
    quick = entity_order.ledger_times(db, head)
    monkeypatch.setattr(entity_order, "_TIMESTAMP_HEAD", b'{"not":"this layout"')
    assert entity_order.ledger_times(db, head).at == quick.at
    monkeypatch.undo()

    class Unchanged:  # a compressor: only the whole state can be read then
        def compress(self, data: bytes) -> bytes:
            return data

        def decompress(self, data: bytes) -> bytes:
            return data

    monkeypatch.setattr(two_clocks.mapper, "compressor", Unchanged())
    decoded, read_again = [], []
    decode = entity_order.event_from_row
    monkeypatch.setattr(entity_order, "event_from_row",
                        lambda *args: decoded.append(args[1]) or decode(*args))
    monkeypatch.setattr(entity_order, "_decode", lambda *args: read_again.append(args[1]))
    assert entity_order.ledger_times(db, head).at == quick.at
    assert decoded and not read_again  # read whole once: never read again per event


@pytest.mark.parametrize("page_size", [1, 5, 5000])
def test_a_rebuild_in_entity_order_equals_the_fold_in_position_order(two_clocks, page_size):
    ledger = two_clocks
    Runner(ledger, page_size=3).catch_up()
    before = digests(ledger, live_generations(ledger))
    result = rebuild(ledger, page_size=page_size, grace=0)
    assert all(r["position"] == Db(ledger).head_position() for r in result.values())
    assert digests(ledger, live_generations(ledger)) == before  # every version, every column


@pytest.mark.postgres
def test_a_build_split_over_processes_by_entity_ids_equals_the_fold_in_position_order(
        two_clocks_pg):
    ledger = two_clocks_pg
    Runner(ledger, page_size=3).catch_up()
    before = digests(ledger, live_generations(ledger))
    seen: list[tuple[int, int]] = []
    rebuild(ledger, page_size=4, grace=0, jobs=3, progress=lambda *p: seen.append(p))
    assert digests(ledger, live_generations(ledger)) == before
    head = Db(ledger).head_position()
    assert seen[-1] == (head, head)


def test_id_ranges_cover_every_id_once():
    ranges = entity_order.id_ranges(3)
    assert ranges[0][0] == UUID(int=0) and ranges[-1][1] is None
    assert all(ranges[i][1] == ranges[i + 1][0] for i in range(2))
    ids = [UUID(int=0), UUID(int=(1 << 128) - 1), uuid4(), uuid4(), uuid4(), ranges[1][0]]
    for uid in ids:
        assert sum(lo <= uid and (hi is None or uid < hi) for lo, hi in ranges) == 1


@pytest.mark.postgres
def test_a_failing_build_process_fails_the_build_with_its_reason(two_clocks_pg):
    ledger = two_clocks_pg
    db = Db(ledger)
    ensure_projections(db)
    audit = projections_named(["audit"])
    generation = claim_generations(db, audit, "building")["audit"]
    with db.write() as cur:  # the children will have nowhere to write
        drop_tables(cur, db, audit[0], generation)
    times = entity_order.ledger_times(db, db.head_position())
    group = [Attached(audit[0], generation, 0, None, ("building",))]
    with pytest.raises(RuntimeError, match=rf"a build process failed: .*aud_event_g{generation}"):
        entity_order._build_in_parallel(db, group, times, 10, None, 2)
