"""Building a projection copy from zero in entity order: the rebuild's fast path.

Folding the log in position order (what a worker does) interleaves every entity's events with
everyone else's, so a rebuild had to keep every live entity's state in a cache between pages,
reload the histories of entities evicted from it, and close each row version replaced on a
later page with an UPDATE. Built from zero, none of that is needed: the copy's rows of one
entity depend on that entity's events alone (a projection never reads other entities or its
own tables while folding), so the events can be read *entity by entity* (the events table's
primary key order) and each entity folded from its first event to its last in one go. Every
row version is then closed in memory by the entity's next event and written once, complete,
by COPY: no cache, no reload, no UPDATE, memory bounded by one page of entities.

What a row carries from the global order is its ledger time (``from_time``/``to_time``: the
running maximum of recorded times along positions). A first, cheap pass in position order
computes it for every position, reading only the head of each event's state (the recorded
time is the first field the library's transcoder writes), before the entity-ordered pass.

The copy is built up to the head as it was when the build began; the rebuild's switch then
folds whatever arrived since in position order, like a worker (``Runner.fold_remaining``).
"""

from __future__ import annotations

import gc
import os
import pickle
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.utils import resolve_topic

from domain.errors import UnreadableEvent
from domain.persistence.checked_mapper import topic_problem
from projections import registry
from projections.base import entity_type_of
from projections.db import Db
from projections.runner import Attached, event_from_row, fold_group
from projections.tables import ledger_time_text, micros_ledger_time

Progress = Callable[[int, int], None]  # (events folded so far, events to fold)

_TIMESTAMP_HEAD = b'{"timestamp":{"_type_":"datetime_iso","_data_":"'
_HEAD_BYTES = 96  # enough for the head above and an ISO 8601 timestamp with its offset


_NO_TIME = -(2**63)  # no event of a known kind yet: the ledger time is BEGINNING
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class LedgerTimes:
    """The ledger time at each position up to ``last`` (the last position there is), as
    microseconds since the epoch: 8 bytes a position, so a million positions are 8 MB in
    every build process, where their texts were ~100 MB."""

    at: array[int]  # indexed by position (a gap keeps _NO_TIME: never looked up)
    last: int
    events: int  # notifications up to ``last`` (gaps are not counted)

    def text(self, position: int) -> str:
        micros = self.at[position]
        if micros == _NO_TIME:
            return ledger_time_text(None)
        return micros_ledger_time(micros)

    @property
    def end(self) -> str:
        return self.text(self.last)


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


class _Topics:
    """Which entity a topic's events belong to (None: a topic that names no event of the
    ledger, which the mapper refuses when the row is decoded)."""

    def __init__(self) -> None:
        self.kinds: dict[str, str | None] = {}

    def kind(self, topic: str) -> str | None:
        if topic not in self.kinds:
            self.kinds[topic] = (None if topic_problem(topic) is not None
                                 else entity_type_of(resolve_topic(topic)))
        return self.kinds[topic]


def ledger_times(db: Db, until: int, page: int = 20_000) -> LedgerTimes:
    """Pass one, in position order: the running maximum of recorded times at every position
    up to ``until``, as ``decode_page`` computes it."""
    mapper = db.ledger.mapper
    fast = mapper.cipher is None and mapper.compressor is None
    topics = _Topics()
    at = array("q", [_NO_TIME]) * (until + 1)
    current: datetime | None = None
    micros = _NO_TIME
    last, events = 0, 0
    # Only the head of each event's state, where its recorded time is (both stores have
    # substr), and not which entity it is or its version: turning a million ids into UUIDs
    # was a fifth to a third of the pass's CPU. An event not in that layout is read again
    # (``_decode``); encrypted or compressed events are all read whole.
    columns = (f"topic, substr(state, 1, {_HEAD_BYTES})" if fast
               else "topic, state, originator_id, originator_version")

    def read(start: int) -> list[Any]:
        with db.read() as cur:
            cur.execute(
                f"SELECT {db.position_column}, {columns} "
                f"FROM {db.events_table} WHERE {db.position_column} > %s "
                f"ORDER BY {db.position_column} LIMIT %s", (start, page))
            return cur.fetchall()  # no upper bound in SQL: with one, plans sort the range

    for rows in _read_ahead(read, until):
        for position, topic, state, *entity in rows:
            if position > until:
                break
            events += 1
            last = position
            state = bytes(state)
            moment: datetime | None = None
            if topics.kind(topic) is not None and fast and state.startswith(_TIMESTAMP_HEAD):
                moment = _recorded_time(state)
            if moment is None:  # another layout, no event's topic, or edited: decoded, or
                # refused by the mapper naming the row
                moment = (event_from_row(mapper, position, *entity, topic, state) if entity
                          else _decode(db, position, topic)).timestamp
            if current is None or moment > current:
                current = moment
                micros = _micros(current)
            at[position] = micros
    return LedgerTimes(at, last, events)


def _recorded_time(state: bytes) -> datetime | None:
    """The recorded time at the head of a stored state (``_TIMESTAMP_HEAD``), or None when
    it is not a moment with its time zone there (an edited row: the mapper says why)."""
    end = state.find(b'"', len(_TIMESTAMP_HEAD))
    if end < 0:
        return None
    try:
        moment = datetime.fromisoformat(state[len(_TIMESTAMP_HEAD):end].decode())
    except ValueError:  # UnicodeDecodeError included
        return None
    return moment if moment.tzinfo is not None else None


def _read_ahead(read: Callable[[int], list[Any]], until: int) -> Iterator[list[Any]]:
    """The pages ``read(after)`` returns (keyset: ``after`` is the last position of the page
    before) up to the one that reaches ``until``, each read in a thread while the one before
    is being processed: the database works on the next page meanwhile (the first pass, in
    one process, waited for it about a third of the time)."""
    with ThreadPoolExecutor(1) as reader:
        rows = read(0)
        while rows:
            after = rows[-1][0]
            ahead = reader.submit(read, after) if after < until else None
            yield rows
            if ahead is None:
                return
            rows = ahead.result()


def _decode(db: Db, position: int, topic: str) -> Any:
    """One event the first pass read only the head of, read again whole."""
    with db.read() as cur:
        cur.execute(f"SELECT originator_id, originator_version, state FROM {db.events_table} "
                    f"WHERE {db.position_column} = %s", (position,))
        row = cur.fetchone()
        assert row is not None
    return event_from_row(db.ledger.mapper, position, *row[:2], topic, row[2])


def entity_pages(db: Db, until: int, times: LedgerTimes, kinds: frozenset[str], page: int,
                 ids: tuple[UUID, UUID | None] | None = None
                 ) -> Iterator[tuple[list[tuple[int, Any, str]], int]]:
    """Pass two: the events up to ``until`` of the entities of ``kinds`` in entity order
    (by id, then version), decoded, as pages of whole entities — (position, event, ledger
    time) — with the number of rows read for each page (events of other kinds included).
    ``ids`` = (first, end): only the entities whose ids are in [first, end) (PostgreSQL).

    Read by keyset on the primary key in short transactions: rows up to ``until`` never
    change, and every entity's events up to it are a prefix of its versions."""
    topics = _Topics()
    mapper = db.ledger.mapper
    after: tuple[Any, int] | None = (ids[0], 0) if ids else None
    end = ids[1] if ids else None
    pending: list[tuple[int, Any, str]] = []  # the last entity read, maybe not whole yet
    read = 0
    while True:
        with db.read() as cur:
            # Only the primary key in the condition, so the plan is a walk along it; events
            # after ``until`` (later versions, new entities) are skipped here instead.
            conditions = ["(originator_id, originator_version) > (%s, %s)"] if after else []
            params: list[Any] = list(after or ())
            if end is not None:
                conditions.append("originator_id < %s")
                params.append(end)
            where = f"WHERE {' AND '.join(conditions)} " if conditions else ""
            cur.execute(
                f"SELECT {db.position_column}, originator_id, originator_version, topic, state "
                f"FROM {db.events_table} {where}"
                "ORDER BY originator_id, originator_version LIMIT %s", (*params, page))
            rows = cur.fetchall()
        if not rows:
            break
        out: list[tuple[int, Any, str]] = []
        for position, oid, version, topic, state in rows:
            if position > until:
                continue
            read += 1
            if topics.kind(topic) not in kinds:
                # Not folded, yet read as every reader reads it (the mapper refuses a row
                # that no longer reads, or names no event): an edit there stops a rebuild
                # as it stops the worker (the directive-number index, a few % of events).
                event_from_row(mapper, position, oid, version, topic, state)
                continue
            if version == 1 and pending:
                out += pending
                pending = []
            event = event_from_row(mapper, position, oid, version, topic, state)
            pending.append((position, event, times.text(position)))
        last = rows[-1]
        after = (last[1], last[2])
        if out:
            yield out, read
            read = 0
    yield pending, read


def build_in_entity_order(db: Db, group: Sequence[Attached], *, page_size: int = 5000,
                          until: int | None = None, progress: Progress | None = None,
                          jobs: int = 1) -> int:
    """Fill the empty generations of ``group`` (all at position 0, states ``building`` or
    ``scratch``) from the log up to ``until`` (default: the head now), entity by entity; then
    move them to the last position folded. Returns that position.

    ``jobs`` > 1 (PostgreSQL): that many processes fold disjoint ranges of entity ids side by
    side, each writing its rows in its own transactions (entities are independent)."""
    for attached in group:
        if attached.position != 0:
            raise ValueError(f"{attached.name}: an entity-ordered build starts from zero "
                             f"(generation {attached.generation} is at {attached.position})")
    head = db.head_position() if until is None else until
    if head == 0:
        return 0
    times = ledger_times(db, head)
    if jobs > 1 and db.dialect == "postgres":
        _build_in_parallel(db, group, times, page_size, progress, jobs)
    else:
        with collector_paused() as tick:
            _build(db, group, times, page_size, progress, tick, None)
    with db.write() as cur:
        for attached in group:
            registry.advance(cur, db, attached.name, attached.generation, expected=0,
                             position=times.last, ledger_time=times.end, events=times.events,
                             states=attached.states)
            attached.position = times.last
            attached.ledger_time = times.end
    return times.last


@contextmanager
def collector_paused(every: int = 20) -> Iterator[Callable[[], None]]:
    """The cyclic garbage collector's automatic collections off for a build; the youngest
    generation collected once every ``every`` pages instead.

    Folding allocates millions of short-lived objects (events, aggregates, rows) that reference
    counting frees; the automatic collections they trigger found nothing to free and were a
    fifth of a build's time. (No full collection at the end either: in a process holding
    many objects, e.g. a test run, one costs more than a small build.)"""
    enabled = gc.isenabled()
    gc.disable()
    count = 0

    def tick() -> None:
        nonlocal count
        count += 1
        if count % every == 0:
            gc.collect(0)

    try:
        yield tick
    finally:
        if enabled:
            gc.enable()


def _build(db: Db, group: Sequence[Attached], times: LedgerTimes, page_size: int,
           progress: Progress | None, tick: Callable[[], None],
           ids: tuple[UUID, UUID | None] | None) -> None:
    kinds = frozenset().union(*(a.projection.entity_types for a in group))
    done = 0
    if progress is not None:
        progress(0, times.events)
    for page, read in entity_pages(db, times.last, times, kinds, page_size, ids):
        folded = fold_group(db, group, page)
        with db.write() as cur:
            for attached, (writer, _) in zip(group, folded, strict=True):
                if writer.closes:  # a page holds whole entities: every version closes in it
                    raise RuntimeError(f"{attached.name}: a row version left open across "
                                       "pages of an entity-ordered build")
                writer.flush(cur, db, attached.generation)
        done += read
        tick()
        if progress is not None:
            progress(done, times.events)


def id_ranges(jobs: int) -> list[tuple[UUID, UUID | None]]:
    """``jobs`` ranges of equal width covering every UUID (ids are uniformly spread: uuid5
    digests or random)."""
    step = (1 << 128) // jobs
    bounds = [UUID(int=i * step) for i in range(jobs)]
    return [(bounds[i], bounds[i + 1] if i + 1 < jobs else None) for i in range(jobs)]


def _build_in_parallel(db: Db, group: Sequence[Attached], times: LedgerTimes, page_size: int,
                       progress: Progress | None, jobs: int) -> None:
    """Folds ranges of entity ids in child processes (``python -m projections.entity_order``:
    fresh interpreters, so nothing of this process's connections, threads or main script is
    inherited or run again); this process reports their progress (the rebuild stamps the
    copies alive: ``rebuild.kept_alive``). Any child's failure fails the build, and the
    others are stopped."""
    targets = [(a.name, a.generation, a.states) for a in group]
    folded = [0] * jobs
    children: list[tuple[subprocess.Popen[bytes], Any]] = []
    try:
        for ids in id_ranges(jobs):
            errors = tempfile.TemporaryFile()  # a pipe nobody drains could block the child
            child = subprocess.Popen(
                [sys.executable, "-m", "projections.entity_order"], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=errors)
            children.append((child, errors))
            assert child.stdin is not None
            child.stdin.write(pickle.dumps((db.ledger.store.url, targets, times, page_size,
                                            ids)))
            child.stdin.close()
        readers = [threading.Thread(target=_follow, args=(child, folded, i), daemon=True)
                   for i, (child, _) in enumerate(children)]
        for reader in readers:
            reader.start()
        while True:
            codes = [child.poll() for child, _ in children]
            if None not in codes or any(code not in (None, 0) for code in codes):
                break
            if progress is not None:
                progress(sum(folded), times.events)
            time.sleep(0.5)
        for child, errors in children:
            if child.poll() not in (None, 0):
                errors.seek(0)
                lines = errors.read().decode(errors="replace").strip().splitlines()
                reason = lines[-1] if lines else f"exit status {child.returncode}"
                if child.returncode == _UNREADABLE and lines:  # the row, as one process says
                    raise UnreadableEvent(reason)
                raise RuntimeError(f"a build process failed: {reason}")
        for reader in readers:
            reader.join()
        if progress is not None:
            progress(sum(folded), times.events)
    finally:
        for child, errors in children:
            if child.poll() is None:
                child.kill()
                child.wait()
            errors.close()


def _follow(child: subprocess.Popen[bytes], folded: list[int], index: int) -> None:
    assert child.stdout is not None
    for line in child.stdout:
        folded[index] = int(line)


def _build_part() -> None:
    """A child process's share of ``_build_in_parallel``: its arguments pickled on stdin,
    the events it has folded so far printed on stdout after each page."""
    from domain.application import Ledger
    from projections.runner import projections_named

    url, targets, times, page_size, ids = pickle.loads(sys.stdin.buffer.read())
    ledger = Ledger(url)
    try:
        db = Db(ledger)
        projections = projections_named([name for name, _, _ in targets])
        group = [Attached(projection, generation, 0, None, states)
                 for (_, generation, states), projection in zip(targets, projections,
                                                                strict=True)]
        parent = os.getppid()

        def report(done: int, _total: int) -> None:
            if os.getppid() != parent:  # the rebuild died: its copy will be dropped
                raise SystemExit(f"the rebuild process {parent} is gone; stopping")
            print(done, flush=True)

        with collector_paused() as tick:
            _build(db, group, times, page_size, report, tick, ids)
    finally:
        ledger.close()


# A child's exit status when it stopped at a row that no longer reads (its message last on
# stderr): the parent raises UnreadableEvent, which the CLI reports in one line (exit 4).
_UNREADABLE = 4


if __name__ == "__main__":
    try:
        _build_part()
    except UnreadableEvent as exc:
        print(str(exc), file=sys.stderr)
        sys.exit(_UNREADABLE)
    except Exception as exc:  # one line for the parent's error message; the trace above it
        import traceback

        traceback.print_exc()
        reason = str(exc).strip().splitlines()[:1] or [""]
        print(f"{type(exc).__name__}: {reason[0]}", file=sys.stderr)
        sys.exit(1)
