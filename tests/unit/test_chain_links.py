"""The verifier's fast path: ``chain_hash`` gives the format's bytes for any stored row,
``walk`` reports the same over aligned pages (its run of links) as row by row (its merge
of the two streams); the pages it reads are read ahead by a thread that stops when told
(no I/O here)."""

from __future__ import annotations

import hashlib
import threading
from itertools import pairwise
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.integrity.canonical import GENESIS, canonical_bytes, chain_hash, stored_bytes
from domain.integrity.store import Checkpoint, ReadAhead
from domain.integrity.verify import Report, walk

TOPICS = ("domain.task:Task.ProgressReported", "domain.agency:Agency.Registered",
          "domain.directive:Directive.Issued")

regular_row = st.tuples(st.sampled_from("0123456789abcdef").map(lambda c: c * 32),
                        st.integers(1, 50), st.sampled_from(TOPICS),
                        st.binary(max_size=40))
# What a tampered SQLite row can hold instead: another storage class in any column.
odd_row = st.tuples(
    st.one_of(st.integers(), st.text(max_size=5)),
    st.one_of(st.integers(-(2**70), 2**70), st.text(max_size=3)),
    st.one_of(st.sampled_from(TOPICS), st.integers(), st.text(max_size=5)),
    st.one_of(st.binary(max_size=8), st.text(max_size=8), st.integers(),
              st.binary(max_size=8).map(bytearray), st.binary(max_size=8).map(memoryview)),
)


def _rows(draw: Any, n: int) -> list[tuple[Any, ...]]:
    rows = []
    for i in range(n):
        oid, version, topic, state = draw(st.one_of(regular_row, regular_row, odd_row))
        rows.append((i + 1, oid, version, topic, state))
    return rows


def _chain(rows: list[tuple[Any, ...]], draw: Any) -> list[tuple[Any, ...]]:
    """The chain as the hook writes it, then some stored hashes altered."""
    previous, chain = GENESIS, []
    for row in rows:
        previous = chain_hash(previous, *row)
        chain.append([row[0], row[1], row[2], previous])
    for i in draw(st.lists(st.integers(0, max(len(rows) - 1, 0)), max_size=3)):
        if chain:
            chain[i][3] = bytes(32) if chain[i][3] != bytes(32) else b"\x01" * 32
    return [tuple(entry) for entry in chain]


@st.composite
def ledgers(draw: Any) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    rows = _rows(draw, draw(st.integers(0, 30)))
    return rows, _chain(rows, draw)


@settings(max_examples=300, deadline=None)
@given(ledgers())
def test_each_link_is_the_hash_the_format_defines(ledger):
    events, _ = ledger
    previous = GENESIS
    for row in events:
        position, oid, version, topic, state = row
        state_sha256 = hashlib.sha256(stored_bytes(state)).digest()
        expected = hashlib.sha256(
            previous + canonical_bytes(position, oid, version, topic, state_sha256)).digest()
        assert chain_hash(previous, *row) == expected
        previous = expected


class _Locator:
    def __init__(self, events: list, chain: list) -> None:
        self._stored = {(e[1], e[2]): e[0] for e in events}
        self._chained = {(c[1], c[2]): c[0] for c in chain}

    def stored_at(self, oid: str, version: int) -> int | None:
        return self._stored.get((oid, version))

    def chained_at(self, oid: str, version: int) -> int | None:
        return self._chained.get((oid, version))


def _pages(rows: list, cuts: list[int]) -> list[list]:
    bounds = sorted({0, len(rows), *(c for c in cuts if 0 < c < len(rows))})
    return [rows[a:b] for a, b in pairwise(bounds)]


def _checkpoints(chain: list, draw: Any) -> list[Checkpoint]:
    """Checkpoints at random positions, some vouching for the stored hash, some not."""
    positions = sorted(set(draw(st.lists(st.integers(1, len(chain) + 2), max_size=4))))
    checkpoints = []
    for number, position in enumerate(positions, start=1):
        genuine = position <= len(chain) and draw(st.booleans())
        head = chain[position - 1][3] if genuine else b"\x02" * 32
        checkpoints.append(Checkpoint(number, position, head, "2026-12-02T10:00:00+07:00",
                                      "k", b"\x00" * 32, b"\x00" * 64))
    return checkpoints


@settings(max_examples=300, deadline=None)
@given(ledgers(), st.data())
def test_the_walk_reports_the_same_over_aligned_pages_as_row_by_row(ledger, data):
    """Aligned pages (the readers page both tables by the same ranges) take the walk's run
    of links; the events in one page against the chain a row at a time never do, so every
    row goes through the merge of the two streams."""
    events, chain = ledger
    cuts = data.draw(st.lists(st.integers(1, 30), max_size=4))
    checkpoints = _checkpoints(chain, data.draw)

    def verified(event_pages: list[list], chain_pages: list[list]) -> dict[str, Any]:
        report = Report(from_position=1)
        walk(event_pages, chain_pages, start_hash=GENESIS, checkpoints=checkpoints,
             locator=_Locator(events, chain), report=report)
        return report.as_json()

    fast = verified(_pages(events, cuts), _pages(chain, cuts))
    if len(events) > 1:
        assert fast == verified([events], [[entry] for entry in chain])
    tampered = any(chain_hash(chain[i - 1][3] if i else GENESIS, *events[i]) != chain[i][3]
                   for i in range(len(events)))
    if tampered:
        assert not fast["ok"]


def test_pages_read_ahead_arrive_in_order_and_end():
    assert list(ReadAhead(iter([[1], [2, 3], [4]]))) == [[1], [2, 3], [4]]


def test_an_error_while_reading_ahead_reaches_the_reader():
    def pages():
        yield [1]
        raise RuntimeError("connection lost")

    ahead = ReadAhead(pages())
    assert next(ahead) == [1]
    try:
        next(ahead)
    except RuntimeError as exc:
        assert str(exc) == "connection lost"
    else:
        raise AssertionError("the error was swallowed")
    ahead.close()


def test_closing_stops_the_thread_reading_ahead_and_runs_the_cleanup():
    produced: list[int] = []
    closed = threading.Event()

    def endless():
        n = 0
        while True:
            n += 1
            produced.append(n)
            yield [n]

    ahead = ReadAhead(endless(), depth=2, on_close=closed.set)
    assert next(ahead) == [1]
    ahead.close()
    assert closed.is_set()
    assert not any(t.name == "ledger-read-ahead" and t.is_alive()
                   for t in threading.enumerate())
    assert len(produced) <= 4  # the page handed over, the two queued, one waiting to be
    assert list(ahead) == []
