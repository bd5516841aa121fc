"""The projection runner: folds the global event order into the read-model tables.

It pages the library's notification log with ``recorder.select_notifications`` from each
projection's stored position (the same code on SQLite, whose recorder has no ``subscribe()``,
and on PostgreSQL). For each page it folds the events in memory, then in ONE transaction:
compare-and-set the tracking position from the page's start to its end, write the page's row
versions, commit. A crash anywhere before the commit leaves tables and position as they were;
after it, both moved together. A page is never applied twice (the compare-and-set fails for
the second applier, which re-reads and carries on) and no event is skipped.

Gap safety: the runner only ever asks for positions after the last one it applied and moves
to the highest position it was given. That never passes a position that could still appear,
because positions become visible in order: on PostgreSQL every insert takes the events table
in EXCLUSIVE mode until it commits (``PostgresApplicationRecorder._lock_table``), so the ids
one transaction draws from the sequence are committed (or abandoned, leaving a permanent gap)
before the next transaction can draw any; on SQLite a single writer at a time holds the
database's write lock and the rowid is allocated under it.

Projections at the same position share one read and one decode of each page, fold it event
by event together (applying each event once to an aggregate object they share, see
``fold_group``) and commit in one transaction. Per-entity fold state is kept in memory
between pages (LRU); on a miss the entity's earlier events are loaded in one batched query
per page and folded again. A stateless projection (the audit index) keeps no entity state.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification

from domain.errors import UnreadableEvent, unreadable_event
from domain.persistence.checked_mapper import stored_event_label
from projections import registry
from projections.base import EntityCache, EntityState, Projection, chunks, entity_type
from projections.db import Db
from projections.tables import PageWriter, ledger_time_text, parse_ledger_time

log = logging.getLogger("ledger.projections")

BeforeCommit = Callable[[Sequence[str], int, int], None]
Progress = Callable[[int, int], None]  # (events folded so far, head position)


class OutdatedProjection(Exception):
    """The live copy was built by a different version of the projection code."""


def all_projections() -> list[Projection]:
    from projections.accountability import AccountabilityProjection
    from projections.audit import AuditProjection
    from projections.obligations import ObligationsProjection

    return [ObligationsProjection(), AccountabilityProjection(), AuditProjection()]


def projections_named(names: Iterable[str] | None) -> list[Projection]:
    known = {p.name: p for p in all_projections()}
    if names is None:
        return list(known.values())
    chosen = []
    for name in names:
        if name not in known:
            raise KeyError(f"unknown projection {name!r} (known: {', '.join(known)})")
        chosen.append(known[name])
    return chosen


# -- setup -----------------------------------------------------------------------------------


def create_tables(cur: Any, db: Db, projection: Projection, generation: int, *,
                  indexes: bool = True, primary_key: bool = True) -> None:
    """A generation's tables; a copy built from zero leaves out the secondary indexes until
    it is filled (``create_indexes``), and on PostgreSQL its primary keys too
    (``rebuild.add_primary_keys``): one index build is cheaper than maintaining an index row
    by row through a bulk load."""
    for spec in projection.tables:
        for statement in spec.ddl(db, generation, indexes=indexes, primary_key=primary_key):
            cur.execute(statement)


def create_indexes(db: Db, projections: Sequence[Projection], generations: dict[str, int]
                   ) -> None:
    with db.write() as cur:
        for projection in projections:
            for spec in projection.tables:
                for statement in spec.index_ddl(db, generations[projection.name]):
                    cur.execute(statement)


def drop_tables(cur: Any, db: Db, projection: Projection, generation: int) -> None:
    """A generation's tables: those of this code's layout, and any other table of the
    projection's with the generation's suffix, which other code created (a newer layout's
    table, when older code is running again after a rollback, or an older layout's)."""
    suffix = f"_g{generation}"
    names = {spec.physical(generation) for spec in projection.tables}
    names.update(name for name in db.table_names(cur)
                 if name.startswith(projection.table_prefix()) and name.endswith(suffix))
    for name in sorted(names):
        cur.execute(f"DROP TABLE IF EXISTS {db.name(name)}")


def ensure_projections(db: Db, projections: Sequence[Projection] | None = None) -> None:
    """Create the registry and a first (empty, position 0) live generation of each projection
    that has none. Cheap when everything exists; safe when several processes race."""
    projections = list(projections or all_projections())
    with db.read() as cur:
        if registry.registry_exists(cur, db):
            live = registry.live_generations(cur, db)
            if all(p.name in live for p in projections):
                return
    with db.write() as cur:
        registry.lock_registry(cur, db)
        registry.create_registry(cur, db)
        live = registry.live_generations(cur, db)
        for projection in projections:
            if projection.name in live:
                continue
            generation = registry.next_generation(cur, db, projection.name)
            create_tables(cur, db, projection, generation)
            registry.insert_generation(cur, db, projection.name, generation, "live",
                                       projection.fingerprint())


# -- loading and folding -----------------------------------------------------------------------


def decode_page(ledger: Any, notifications: Sequence[Notification],
                ledger_time: Any) -> list[tuple[int, Any, str]]:
    """(position, domain event, ledger time) for each notification. Ledger time is
    the running maximum of recorded times along positions: several processes write with
    their own clocks, so recorded times are only approximately monotonic.

    A stored event that can no longer be read (``UnreadableEvent``) ends the page before it:
    the events ahead of it are folded, and the next page, which starts with it, fails."""
    out: list[tuple[int, Any, str]] = []
    current = ledger_time
    text = ledger_time_text(current)
    for note in notifications:
        try:
            event = ledger.mapper.to_domain_event(note)
        except UnreadableEvent:
            if not out:
                raise
            break
        if current is None or event.timestamp > current:
            current = event.timestamp
            text = ledger_time_text(current)
        out.append((note.id, event, text))
    return out


def load_histories(db: Db, ids: Sequence[UUID], upto: int) -> dict[UUID, list[tuple[int, Any]]]:
    """Every event of the given entities up to a position, with positions, in one query per
    500 entities (the library's ``select_events`` does not return positions)."""
    with db.read() as cur:
        return select_histories(cur, db, ids, upto)


def select_histories(cur: Any, db: Db, ids: Sequence[UUID], upto: int
                     ) -> dict[UUID, list[tuple[int, Any]]]:
    """``load_histories`` inside the caller's read transaction."""
    out: dict[UUID, list[tuple[int, Any]]] = defaultdict(list)
    mapper = db.ledger.mapper
    for chunk in chunks(list(ids), 500):
        if db.dialect == "postgres":
            cur.execute(
                f"SELECT notification_id, originator_id, originator_version, topic, state "
                f"FROM {db.events_table} WHERE originator_id = ANY(%s) AND "
                "notification_id <= %s ORDER BY originator_id, originator_version",
                (chunk, upto),
            )
        else:
            marks = ", ".join(["%s"] * len(chunk))
            cur.execute(
                f"SELECT rowid, originator_id, originator_version, topic, state FROM "
                f"{db.events_table} WHERE originator_id IN ({marks}) AND rowid <= %s "
                "ORDER BY originator_id, originator_version",
                (*[i.hex for i in chunk], upto),
            )
        for position, oid, version, topic, state in cur.fetchall():
            event = event_from_row(mapper, position, oid, version, topic, state)
            out[event.originator_id].append((position, event))
    return out


def event_from_row(mapper: Any, position: int, originator_id: Any, version: int, topic: str,
                   state: Any) -> Any:
    """The domain event of an events-table row read directly (SQLite stores ids as text)."""
    uid = originator_id if isinstance(originator_id, UUID) else UUID(originator_id)
    return mapper.to_domain_event(Notification(
        id=position, originator_id=uid, originator_version=version, topic=topic,
        state=bytes(state)))


@dataclass
class Attached:
    """A projection generation this runner writes to."""

    projection: Projection
    generation: int
    position: int
    ledger_time: str | None
    states: tuple[str, ...] = ("live",)
    cache: EntityCache = field(default_factory=EntityCache)

    @property
    def name(self) -> str:
        return self.projection.name


def _working_states(attached: Attached, relevant: Sequence[tuple[int, Any, str]]
                    ) -> tuple[dict[UUID, EntityState], dict[UUID, int]]:
    """Each entity's state before its first event in the page, from the cache, and the
    entities missing from it (with the version of their first event in the page)."""
    cache = attached.cache
    working: dict[UUID, EntityState] = {}
    missing: dict[UUID, int] = {}
    seen: set[UUID] = set()
    for _, event, _ in relevant:
        eid = event.originator_id
        if eid in seen:
            continue
        seen.add(eid)
        if event.originator_version == 1:
            cache.pop(eid)
            continue
        state = cache.pop(eid)
        if state is not None and state.aggregate.version == event.originator_version - 1:
            working[eid] = state
        else:
            missing[eid] = event.originator_version
    return working, missing


def _reload(db: Db, position: int,
            wanted: Sequence[tuple[Attached, dict[UUID, EntityState], dict[UUID, int]]],
            page: Sequence[tuple[int, Any, str]]) -> None:
    """Fold the missing entities' earlier events again: one batched read of their histories
    for all the generations at this position (the caches of projections folding together
    miss the same entities), and one replay per entity for every projection that missed it,
    sharing the aggregate as the page fold does."""
    ids = {eid for _, _, missing in wanted for eid in missing}
    if not ids:
        return
    histories = load_histories(db, list(ids), position)
    for eid in ids:
        takers = [(a.projection, working, missing[eid]) for a, working, missing in wanted
                  if eid in missing]
        states = replay_shared([p for p, _, _ in takers], histories.get(eid, []))
        for (_, working, version), state in zip(takers, states, strict=True):
            if state is None or state.aggregate.version != version - 1:
                raise _history_gap(page, eid, version)
            working[eid] = state


def _history_gap(page: Sequence[tuple[int, Any, str]], eid: UUID, version: int
                 ) -> UnreadableEvent:
    """The refusal of the page's first event of ``eid`` (at ``version``) when the log before
    it does not hold the entity's earlier versions: a row deleted, or one whose entity or
    version was edited (the ledger writes an entity's versions in position order)."""
    position, event = next((p, e) for p, e, _ in page if e.originator_id == eid)
    return unreadable_event(
        stored_event_label(position, type(event).__qualname__, eid, version),
        f"cannot be folded: its entity's events before version {version} are not in the log "
        "before it")


def replay_shared(projections: Sequence[Projection], history: Sequence[tuple[int, Any]]
                  ) -> list[EntityState | None]:
    """Each projection's state of one entity folded from its ``history`` (position, event),
    rendered: each event applied once to one aggregate the projections share (those whose
    fold is the plain mutate + advance)."""
    states: list[EntityState | None] = [None] * len(projections)
    aggregate: Any = None
    shares = [type(p).fold is Projection.fold for p in projections]
    for position, event in history:
        if any(shares):
            aggregate = event.mutate(aggregate)
        for i, projection in enumerate(projections):
            if shares[i]:
                states[i] = projection.advance(states[i], event, position, aggregate)
            else:
                states[i], _ = projection.fold(states[i], event, position, None)
    for projection, state in zip(projections, states, strict=True):
        if state is not None:
            state.rendered = projection.render(state)
    return states


def fold_group(db: Db, group: Sequence[Attached], page: Sequence[tuple[int, Any, str]]
               ) -> list[tuple[PageWriter, dict[UUID, EntityState]]]:
    """Fold one page into several generations at the same position; per generation, the row
    versions to write and the entity states after the page.

    Event by event, so that projections whose states hold the *same* aggregate object (the
    runner shares it between them: the aggregate a creation event returns is given to every
    projection of its entity type) apply each event to it once; a projection that reloaded
    its own copy (a cache miss) applies events to that copy itself."""
    out: list[tuple[PageWriter, dict[UUID, EntityState]]] = []
    stateful = []
    wanted = []
    for attached in group:
        projection = attached.projection
        writer = PageWriter(projection.tables)
        types = projection.entity_types
        relevant = [(p, e, t) for p, e, t in page if entity_type(e) in types]
        working: dict[UUID, EntityState] = {}
        out.append((writer, working))
        if projection.stateless:
            for position, event, time_text in relevant:
                for table, key, values in projection.log_rows(event, position, time_text):
                    writer.append(table, key, values, position, time_text)
            continue
        cached, missing = _working_states(attached, relevant)
        working.update(cached)
        wanted.append((attached, working, missing))
        shares = type(projection).fold is Projection.fold  # its fold is mutate + advance
        stateful.append((projection, types, writer, working, shares))
    if wanted:
        _reload(db, group[0].position, wanted, page)
    for position, event, time_text in page:
        kind = entity_type(event)
        eid = event.originator_id
        applied: dict[int, Any] = {}  # id(aggregate before) -> aggregate after this event
        for projection, types, writer, working, shares in stateful:
            if kind not in types:
                continue
            state = working.get(eid)
            before = state.rendered if state is not None else {}
            if shares:
                prior = state.aggregate if state is not None else None
                aggregate = applied.get(id(prior))
                if aggregate is None:
                    aggregate = applied[id(prior)] = event.mutate(prior)
                state = projection.advance(state, event, position, aggregate)
            else:
                state, logs = projection.fold(state, event, position, time_text)
                for table, key, values in logs:
                    writer.append(table, key, values, position, time_text)
            after = projection.render_change(state, event, before)
            writer.diff(before, after, position, time_text)
            state.rendered = after
            working[eid] = state
    return out


class Runner:
    """Keeps projection generations up to date with the log, one page at a time.

    ``attach`` chooses which generations: by default the live one of each projection (what
    a worker does); a rebuild attaches the generation it is building."""

    def __init__(self, ledger: Any, projections: Sequence[Projection] | None = None, *,
                 page_size: int = 500, cache_size: int = 20_000,
                 before_commit: BeforeCommit | None = None, until: int | None = None) -> None:
        self.ledger = ledger
        self.db = Db(ledger)
        self.projections = list(projections or all_projections())
        self.page_size = page_size
        self.cache_size = cache_size
        self.before_commit = before_commit
        self.until = until
        self.attached: dict[str, Attached] = {}
        self.outdated: set[str] = set()
        self.follow_live = True

    # -- which generations -------------------------------------------------------------------

    def attach(self, projection: Projection, generation: int, states: tuple[str, ...]) -> None:
        """Write to a particular generation (a rebuild's) instead of following the live one."""
        self.follow_live = False
        with self.db.read() as cur:
            found = registry.get_generation(cur, self.db, projection.name, generation)
        assert found is not None
        self.attached[projection.name] = Attached(
            projection, generation, found.position, found.ledger_time, states,
            EntityCache(self.cache_size))

    def sync(self) -> None:
        """Follow the registry: a switch to a new generation, or another worker having moved
        a position, invalidates what this runner holds in memory."""
        if self.follow_live:
            ensure_projections(self.db, self.projections)
        with self.db.read() as cur:
            if self.follow_live:
                rows = registry.live_generations(cur, self.db)
            else:
                rows = {name: registry.get_generation(cur, self.db, name, a.generation)
                        for name, a in self.attached.items()}
        for projection in self.projections:
            row = rows.get(projection.name)
            if row is None:
                self.attached.pop(projection.name, None)
                continue
            if row.fingerprint != projection.fingerprint():
                self.outdated.add(projection.name)
                self.attached.pop(projection.name, None)
                continue
            self.outdated.discard(projection.name)
            current = self.attached.get(projection.name)
            if (current is None or current.generation != row.generation
                    or current.position != row.position):
                cache = current.cache if current is not None else EntityCache(self.cache_size)
                if current is not None:
                    cache.clear()
                states = current.states if current is not None else ("live",)
                self.attached[projection.name] = Attached(
                    projection, row.generation, row.position, row.ledger_time, states, cache)

    # -- folding -----------------------------------------------------------------------------

    def step(self) -> int:
        """Fold at most one page into every attached generation; returns events folded."""
        self.sync()
        groups: dict[int, list[Attached]] = defaultdict(list)
        for attached in self.attached.values():
            groups[attached.position].append(attached)
        return sum(self._page(group) for _, group in sorted(groups.items()))

    def catch_up(self, progress: Progress | None = None, stop: threading.Event | None = None
                 ) -> int:
        """Fold pages until the head (or until ``stop`` is set); returns events folded."""
        total = 0
        while stop is None or not stop.is_set():
            folded = self.step()
            total += folded
            if progress is not None:
                progress(self.min_position(), self.db.head_position())
            if folded == 0:
                break
        return total

    def min_position(self) -> int:
        return min((a.position for a in self.attached.values()), default=0)

    def _page(self, group: list[Attached], cur: Any = None) -> int:
        """One page into a group of generations at the same position. With ``cur``, inside
        the caller's transaction (a rebuild's switch); else in a transaction of its own."""
        start = group[0].position
        limit = self.page_size
        if self.until is not None:
            if start >= self.until:
                return 0
            limit = min(limit, self.until - start)
        notes = self.ledger.recorder.select_notifications(
            start=start, limit=limit, inclusive_of_start=False)
        if self.until is not None:
            notes = [n for n in notes if n.id <= self.until]
        if not notes:
            return 0
        page = decode_page(self.ledger, notes, parse_ledger_time(group[0].ledger_time))
        end, end_time = page[-1][0], page[-1][2]
        folded: list[tuple[Attached, PageWriter, dict[UUID, EntityState]]] = []
        try:
            for attached, (writer, working) in zip(group, fold_group(self.db, group, page),
                                                   strict=True):
                folded.append((attached, writer, working))
            if cur is not None:
                self._write(cur, folded, start, end, end_time, len(page))
            else:
                with self.db.write() as own:
                    self._write(own, folded, start, end, end_time, len(page))
                    if self.before_commit is not None:
                        self.before_commit([a.name for a in group], page[0][0], end)
        except registry.RegistryConflict as exc:
            log.info("projection position moved elsewhere (%s); re-reading", exc)
            for attached in group:
                attached.cache.clear()
                attached.position = -1  # forces a re-read on the next sync
            return 0
        except BaseException:
            for attached in group:
                attached.cache.clear()
            raise
        for attached, _, working in folded:
            attached.position = end
            attached.ledger_time = end_time
            for eid, state in working.items():
                attached.cache.put(eid, state)
        return len(page)

    def _write(self, cur: Any, folded: Sequence[tuple[Attached, PageWriter, Any]], start: int,
               end: int, end_time: str, events: int) -> None:
        for attached, writer, _ in sorted(  # (a rebuild's switch takes them so too)
                folded, key=lambda item: registry.row_order(item[0].name, item[0].generation)):
            registry.advance(cur, self.db, attached.name, attached.generation,
                             expected=start, position=end, ledger_time=end_time,
                             events=events, states=attached.states)
            writer.flush(cur, self.db, attached.generation)

    def fold_remaining(self, cur: Any) -> int:
        """Inside the caller's transaction, fold every attached generation up to the head."""
        total = 0
        while True:
            groups: dict[int, list[Attached]] = defaultdict(list)
            for attached in self.attached.values():
                groups[attached.position].append(attached)
            folded = sum(self._page(group, cur) for _, group in sorted(groups.items()))
            total += folded
            if folded == 0:
                return total


# -- the worker ------------------------------------------------------------------------------


class Waker:
    """Sleeps until the ledger may have new events: on PostgreSQL a NOTIFY on the events
    table's channel (the library sends one with every insert), and in any case after
    ``poll`` seconds, so a lost notification can only delay, never stall, the worker."""

    def __init__(self, db: Db, poll: float) -> None:
        self.db = db
        self.poll = poll
        self._conn: Any = None
        self._context: Any = None

    def __enter__(self) -> Waker:
        self._listen()
        return self

    def _listen(self) -> None:
        if self.db.dialect == "postgres":
            try:
                self._context = self.db.datastore.get_connection()
                self._conn = self._context.__enter__()
                self._conn.execute(f'LISTEN "{self.db.channel}"')
            except Exception as exc:  # polling still works
                log.warning("LISTEN failed (%s); polling every %ss", exc, self.poll)
                self._close()

    def wait(self, stop: threading.Event) -> None:
        if self._conn is None and self.db.dialect == "postgres":
            self._listen()  # try again: the connection may have been lost
        if self._conn is None:
            stop.wait(self.poll)
            return
        deadline = time.monotonic() + self.poll
        try:
            while not stop.is_set() and time.monotonic() < deadline:
                for _ in self._conn.notifies(timeout=min(0.5, self.poll), stop_after=1):
                    return
        except Exception as exc:
            log.warning("LISTEN connection lost (%s); polling", exc)
            self._close()

    def _close(self) -> None:
        if self._context is not None:
            try:
                self._context.__exit__(None, None, None)
            except Exception:
                log.debug("closing the LISTEN connection failed", exc_info=True)
        self._context = self._conn = None

    def __exit__(self, *exc: object) -> None:
        self._close()


class PacedCollector:
    """The cyclic garbage collector of a worker process, paced by the worker's own rhythm.

    A worker keeps thousands of entities' fold state in its cache: long-lived objects that a
    full automatic collection traverses, finding nothing to free, while the worker holds a
    page of events uncommitted. Under write load those collections took 65-300 ms each,
    several times a minute (measured with ``gc.callbacks`` in the lag benchmark's worker):
    the commit-to-visible tail. So automatic collections are off; the young generations are
    collected after each round of pages (what folding leaves is almost all freed by reference
    counting), and a full collection runs when the worker finds nothing to fold and
    ``idle_every`` seconds have passed since the last one, or after ``busy_every`` seconds
    under constant load, so memory held by cycles stays bounded either way.

    Process-wide: for a process that only folds (``ledger worker``), not one serving
    requests beside it."""

    def __init__(self, *, idle_every: float = 60.0, busy_every: float = 600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.idle_every, self.busy_every, self.clock = idle_every, busy_every, clock
        self.last_full = clock()
        self.full_collections = 0

    def __enter__(self) -> PacedCollector:
        self.was_enabled = gc.isenabled()
        gc.disable()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.was_enabled:
            gc.enable()

    def after_round(self, folded: int) -> None:
        """After a round of pages that folded ``folded`` events (0: the worker is idle)."""
        since = self.clock() - self.last_full
        if since >= self.busy_every or (folded == 0 and since >= self.idle_every):
            gc.collect()
            self.last_full = self.clock()
            self.full_collections += 1
        else:
            gc.collect(1)


def run_worker(ledger: Any, *, stop: threading.Event, poll: float = 2.0, page_size: int = 500,
               on_progress: Callable[[Runner, int], None] | None = None,
               collector: PacedCollector | None = None) -> None:
    """Keep every live projection caught up until ``stop`` is set; survives store errors by
    backing off and retrying. ``collector``: pace the garbage collector by the rounds of
    pages (a dedicated worker process; see ``PacedCollector``)."""
    runner = Runner(ledger, page_size=page_size)
    backoff = poll
    with Waker(runner.db, poll) as waker, collector or contextlib.nullcontext():
        while not stop.is_set():
            try:
                folded = runner.catch_up(stop=stop)
                backoff = poll
            except Exception as exc:
                # A damaged event stays until an operator restores its row: an error, not noise.
                level = logging.ERROR if isinstance(exc, UnreadableEvent) else logging.WARNING
                log.log(level, "projection page failed: %s; retrying in %.1fs", exc, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 60.0)
                continue
            if collector is not None:
                collector.after_round(folded)
            if on_progress is not None:
                on_progress(runner, folded)
            waker.wait(stop)
