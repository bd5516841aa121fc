"""The read models' query API (used by the CLI and the HTTP layer).

``ReadModels(ledger)`` answers from the projection tables only — indexed lookups on the rows'
validity intervals, never a replay of the log. Every answer is a plain JSON-able dict with ISO
8601 dates and says what it is based on (``as_of``: projection, generation, position, ledger
time, and how the moment was chosen).

Two time axes (DESIGN §5):

* ``as_of`` (a moment on the ledger clock) or ``as_of_position``: the state the ledger held
  then — what it knew. Default: everything the projection has folded.
* ``effective_on`` (a calendar day in Vietnam): the day statuses are judged on — "what was
  overdue on 31/5 as we know it now". Default: the day of ``as_of``, or today.

Each query reads one projection at one position, so its tables agree with each other even
while pages commit around it (rows valid at a committed position never change).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from types import MappingProxyType
from typing import Any, NamedTuple, TypeVar
from uuid import UUID

from eventsourcing.persistence import PersistenceError

from domain.accountability import (
    ActFacts,
    ActKind,
    AgencyFacts,
    HeadRecord,
    LeadSpell,
    ObligationFacts,
    Period,
    Shortfall,
    TaskRef,
    Tenure,
    assess,
    head_on,
    may_answer_for,
    responsible_agency,
    threshold_advice,
)
from domain.clock import local_date
from domain.deadlines import ONCE, Deadline, DeadlineKind
from domain.errors import UnknownAgency, UnknownDirective, UnknownTask, ValidationError
from domain.ids import agency_id, task_id
from domain.obligations import MOVING_TO_SUCCESSOR, owed_on, owed_once_on
from domain.persistence.transcodings import DeadlineAsDict
from domain.rules import OPEN_STATUSES, OccurrenceState, TaskStatus, days_overdue
from domain.specs import ordinal_key
from projections import registry
from projections.audit import apply_changes, entity_steps, event_details, unflatten
from projections.base import Projection, chunks
from projections.collector_pause import collection_paused
from projections.db import Cursor, Db
from projections.obligations import LINK_JUDGING, OCCURRENCE_JUDGING
from projections.runner import (
    OutdatedProjection,
    all_projections,
    ensure_projections,
    select_histories,
)
from projections.tables import (
    dumps,
    ledger_time_text,
    loads,
    or_unset,
    parse_ledger_time,
    valid_at,
)

T = TypeVar("T")
_DEADLINE = DeadlineAsDict()
_STATUS_ORDER = {s: i for i, s in enumerate((
    TaskStatus.OVERDUE, TaskStatus.IN_PROGRESS, TaskStatus.NOT_DUE, TaskStatus.NO_DEADLINE,
    TaskStatus.DONE_LATE, TaskStatus.DONE_ON_TIME, TaskStatus.CANCELLED))}


def _date(text: str | None) -> date | None:
    return None if text is None else date.fromisoformat(text)


_KEY_SEPARATOR = "\x1f"  # ASCII unit separator: in no task id or agency code


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One projection generation read at one position (or ledger time)."""

    db: Db
    projection: Projection
    generation: int
    position: int
    ledger_time: str | None
    mode: str  # "pos" | "time"
    bound: Any
    as_of: datetime | None

    def table(self, logical: str) -> str:
        return self.db.name(self.projection.spec(logical).physical(self.generation))

    def where(self, alias: str = "") -> tuple[str, tuple[Any, Any]]:
        return valid_at(self.mode, alias), (self.bound, self.bound)

    def meta(self) -> dict[str, Any]:
        return {
            "projection": self.projection.name, "generation": self.generation,
            "position": self.position if self.mode == "pos" else None,
            "projection_position": self.position,
            "ledger_time": (parse_ledger_time(self.ledger_time).isoformat()
                            if parse_ledger_time(self.ledger_time) else None),
            "as_of": self.as_of.isoformat() if self.as_of else None,
            "basis": ("everything folded so far" if self.as_of is None and self.mode == "pos"
                      else "recorded time" if self.mode == "time" else "position"),
        }

    def select(self, cur: Cursor, logical: str, columns: Sequence[str], where: str = "",
               params: Sequence[Any] = (), order: str = "", group: str = ""
               ) -> list[tuple[Any, ...]]:
        return cur.execute(*self._select(logical, columns, where, params, order,
                                         group)).fetchall()

    def _select(self, logical: str, columns: Sequence[str], where: str = "",
                params: Sequence[Any] = (), order: str = "", group: str = ""
                ) -> tuple[str, tuple[Any, ...]]:
        condition, bound = self.where()
        sql = f"SELECT {', '.join(columns)} FROM {self.table(logical)} WHERE {condition}"
        if where:
            sql += f" AND ({where})"
        if group:
            sql += f" GROUP BY {group}"
        if order:
            sql += f" ORDER BY {order}"
        return sql, (*bound, *params)

    def select_in(self, cur: Cursor, logical: str, columns: Sequence[str], column: str,
                  values: Iterable[Any], where: str = "", params: Sequence[Any] = ()
                  ) -> list[tuple[Any, ...]]:
        if self.db.dialect == "postgres":
            return self.select(cur, logical, columns, *self._member(column, values, where,
                                                                     params))
        out: list[tuple[Any, ...]] = []
        for chunk in chunks(sorted(set(values)), 500):  # SQLite: at most 999 parameters
            marks = ", ".join(["%s"] * len(chunk))
            clause = f"{column} IN ({marks})" + (f" AND ({where})" if where else "")
            out += self.select(cur, logical, columns, clause, (*chunk, *params))
        return out

    @contextlib.contextmanager
    def select_in_ahead(self, cur: Cursor, logical: str, columns: Sequence[str], column: str,
                        values: Iterable[Any]) -> Iterator[Callable[[], list[tuple[Any, ...]]]]:
        """``select_in`` sent now, its rows fetched later in the block (``Cursor.ahead``)."""
        with self.selects_in_ahead(cur, [(logical, columns, column, values)]) as (rows,):
            yield rows

    @contextlib.contextmanager
    def selects_in_ahead(self, cur: Cursor,
                         requests: Sequence[tuple[str, Sequence[str], str, Iterable[Any]]]
                         ) -> Iterator[list[Callable[[], list[tuple[Any, ...]]]]]:
        """``select_in_ahead`` of several (logical table, columns, column, values) at once:
        sent together, fetched in their order (``Cursor.ahead_all``)."""
        if self.db.dialect != "postgres":
            answers = [self.select_in(cur, *request) for request in requests]
            yield [(lambda rows=rows: rows) for rows in answers]
            return
        statements = [self._select(logical, columns, *self._member(column, values))
                      for logical, columns, column, values in requests]
        with cur.ahead_all(statements) as fetchers:
            yield fetchers

    def select_ahead(self, cur: Cursor, logical: str, columns: Sequence[str], where: str = "",
                     params: Sequence[Any] = (), group: str = ""
                     ) -> contextlib.AbstractContextManager[Callable[[], list[tuple[Any, ...]]]]:
        """``select`` sent now, its rows fetched later in the block (``Cursor.ahead``)."""
        return cur.ahead(*self._select(logical, columns, where, params, group=group))

    @staticmethod
    def _member(column: str, values: Iterable[Any], where: str = "",
                params: Sequence[Any] = ()) -> tuple[str, tuple[Any, ...]]:
        """PostgreSQL's condition "``column`` is one of ``values``" (and ``where``).

        One parameter: psycopg re-parses a statement of hundreds of placeholders on every
        call (it caches only short ones), and the server plans one statement. The keys go
        as one text split by the server (psycopg builds an array parameter in Python, key by
        key), unnested in a subquery so that the planner does not see how many there are:
        given thousands as a literal array (an agency's whole answer), it scanned the whole
        table in parallel (96-130 ms) instead of probing the key (22-26 ms)."""
        keys = sorted({str(value) for value in values})
        if any(_KEY_SEPARATOR in key for key in keys):
            member, packed = "unnest(%s::text[])", (keys,)
        else:
            member = "unnest(string_to_array(%s, %s))"
            packed = (_KEY_SEPARATOR.join(keys), _KEY_SEPARATOR)
        clause = (f"{column} = ANY(ARRAY(SELECT {member}))"
                  + (f" AND ({where})" if where else ""))
        return clause, (*packed, *params)


class ReadModels:
    """Queries over the obligations, accountability and audit read models."""

    def __init__(self, ledger: Any, *, generations: Mapping[str, int] | None = None) -> None:
        self.ledger = ledger
        self.db = Db(ledger)
        self.projections = {p.name: p for p in all_projections()}
        self.pinned = dict(generations or {})
        self._fresh: dict[str, tuple[float, tuple[int, int] | None]] = {}
        self._asking: Counter[str] = Counter()  # freshness questions in flight
        self._asking_lock = threading.Lock()
        self._monotonic = time.monotonic  # the freshness tokens' clock (tests move it)
        ensure_projections(self.db)

    # -- plumbing ----------------------------------------------------------------------------

    def _read(self, fn: Callable[[Cursor], T], *, long: bool = False) -> T:
        """Run a query in one read transaction; once more if a rebuild dropped the generation
        it had just resolved (the grace period makes that rare). ``long``: a query that
        judges rows in Python between its statements (see ``Db.read``), with Python's
        automatic collection paused meanwhile (``collection_paused``)."""
        for attempt in (1, 2):
            try:
                with (collection_paused() if long else contextlib.nullcontext()), \
                        self.db.read(long=long) as cur:
                    return fn(cur)
            except PersistenceError as exc:
                text = str(exc).lower()
                if attempt == 2 or not ("no such table" in text or "does not exist" in text):
                    raise
        raise AssertionError("unreachable")

    def _snapshot(self, cur: Cursor, name: str, as_of: datetime | None,
                  as_of_position: int | None) -> Snapshot:
        projection = self.projections[name]
        if name in self.pinned:
            gen = registry.get_generation(cur, self.db, name, self.pinned[name])
        else:
            gen = registry.live_generations(cur, self.db).get(name)
        if gen is None:
            raise OutdatedProjection(f"projection {name} has no live copy; run: ledger rebuild "
                                     f"{name}")
        if gen.fingerprint != projection.fingerprint():
            raise OutdatedProjection(
                f"projection {name} was built by another version of its code; run: "
                f"ledger rebuild {name}")
        if as_of is not None and as_of.tzinfo is None:
            raise ValidationError("as_of must carry a time zone", field="as_of")
        if as_of_position is not None:
            return Snapshot(self.db, projection, gen.generation, gen.position, gen.ledger_time,
                            "pos", min(as_of_position, gen.position), as_of)
        if as_of is not None:
            moment = ledger_time_text(as_of)
            if gen.ledger_time is not None and moment < gen.ledger_time:
                return Snapshot(self.db, projection, gen.generation, gen.position,
                                gen.ledger_time, "time", moment, as_of)
        return Snapshot(self.db, projection, gen.generation, gen.position, gen.ledger_time,
                        "pos", gen.position, as_of)

    def _day(self, as_of: datetime | None, effective_on: date | None) -> date:
        if effective_on is not None:
            return effective_on
        if as_of is not None:
            # "As of 31/12" is the instant 31/12 24:00 (= 1/1 00:00): judged on 31/12.
            return local_date(as_of - timedelta(microseconds=1))
        return local_date(self.ledger.clock())

    # -- status ------------------------------------------------------------------------------

    def freshness(self, name: str, max_age: float = 0.0) -> tuple[int, int] | None:
        """(generation, position) of the live copy of projection ``name``: while it stays the
        same, a query with the same arguments (and the same day) gives the same answer, so
        callers may cache answers under it. None when there is no live copy.

        ``max_age``: seconds a token read earlier by this process may be reused instead of
        asking the database again (every cached HTTP answer asks; under load most of a
        cached read was that round trip). The answer can then lag the projection by that
        much more, twice as much while a newer token is being asked for (see
        ``recent_freshness``); never pass it where a caller waits to read its own write."""
        recent = self.recent_freshness(name, max_age)
        if recent is not None:
            return recent
        with self._asking_lock:
            self._asking[name] += 1
        return self._ask_freshness(name)

    def _ask_freshness(self, name: str) -> tuple[int, int] | None:
        """Ask the database for the token (the caller has counted itself in ``_asking``)."""
        try:
            now = self._monotonic()
            with self.db.statement() as cur:
                gen = registry.live_generations(cur, self.db).get(name)
            token = (gen.generation, gen.position) if gen is not None else None
            with self._asking_lock:
                seen = self._fresh.get(name)
                if seen is None or seen[0] <= now:  # a slower, older question never wins
                    self._fresh[name] = (now, token)
            return token
        finally:
            with self._asking_lock:
                self._asking[name] -= 1

    def recent_freshness(self, name: str, max_age: float) -> tuple[int, int] | None:
        """The token ``freshness(name, max_age)`` would reuse without asking the database,
        or None if it would have to ask (never blocks: the HTTP layer calls it on its event
        loop to answer a cached query without a thread).

        Stale while revalidating: a token between ``max_age`` and twice that old is still
        used, and the first caller to find it so starts a thread that asks the database for
        a newer one; the callers meanwhile keep the old token. Under load, every request
        arriving in that round trip had gone to a thread to ask the same question, and
        the one that asked waited for it: a request every ``max_age`` per process, enough
        to make the reads' p99."""
        seen = self._fresh.get(name)
        if max_age <= 0 or seen is None:
            return None
        age = self._monotonic() - seen[0]
        if age < max_age:
            return seen[1]
        if age >= 2 * max_age:
            return None
        with self._asking_lock:
            if not self._asking[name]:
                self._asking[name] += 1
                try:
                    threading.Thread(target=self._revalidate, args=(name,), daemon=True,
                                     name=f"freshness-{name}").start()
                except RuntimeError:  # no thread to be had: this caller asks, and waits
                    self._asking[name] -= 1
                    return None
        return seen[1]

    def _revalidate(self, name: str) -> None:
        # A failure is not lost: the next caller past twice max_age asks itself, and sees it.
        with contextlib.suppress(Exception):
            self._ask_freshness(name)

    def status(self) -> dict[str, Any]:
        """Position, ledger time and lag of every projection (and any rebuild under way)."""
        head = self.db.head_position()

        def read(cur: Cursor) -> dict[str, Any]:
            rows = registry.all_generations(cur, self.db)
            out = []
            for name, projection in self.projections.items():
                mine = [g for g in rows if g.name == name]
                live = next((g for g in mine if g.state == "live"), None)
                out.append({
                    "name": name, "title": projection.title,
                    "generation": live.generation if live else None,
                    "position": live.position if live else 0,
                    "ledger_time": _time_iso(live.ledger_time if live else None),
                    "lag": head - (live.position if live else 0),
                    "events": live.events if live else 0,
                    "updated_at": live.updated_at if live else None,
                    "outdated": bool(live and live.fingerprint != projection.fingerprint()),
                    "rebuilding": [
                        {"generation": g.generation, "position": g.position, "owner": g.owner,
                         "updated_at": g.updated_at, "state": g.state}
                        for g in mine if g.state in ("building", "retired", "scratch")],
                })
            return {"head": head, "projections": out}

        return self._read(read)

    def wait_for(self, position: int | None, timeout: float = 5.0,
                 names: Sequence[str] | None = None) -> bool:
        """Read-your-writes: wait until the projections have folded ``position`` (e.g. a
        command's ``Receipt.position``). True when they have, False on timeout."""
        if position is None:
            return True
        wanted = set(names or self.projections)
        deadline = time.monotonic() + timeout
        while True:
            with self.db.statement() as cur:
                live = registry.live_generations(cur, self.db)
            if all(name in live and live[name].position >= position for name in wanted):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    # -- obligations -------------------------------------------------------------------------

    def obligations(self, agency: str, *, as_of: datetime | None = None,
                    as_of_position: int | None = None, effective_on: date | None = None,
                    include_closed: bool = False, include_groups: bool = True,
                    limit: int | None = None, offset: int = 0) -> dict[str, Any]:
        """What ``agency`` owes on a day: tasks it leads or coordinates, those of agencies
        merged into it (open ones move to the successor), and (``include_groups``) those of
        groups it belongs to ("Các sở, ban, ngành" coordinates thousands of tasks).

        ``limit``/``offset``: one page of the ordered obligations (with ``page``: offset,
        limit, total); counts always cover them all. Every obligation is judged, since the
        order and the counts depend on the day's statuses, but only the page's are read in
        full and rendered: an agency can owe thousands."""
        if limit is not None and limit < 1:
            raise ValidationError("limit must be at least 1", field="limit")
        if offset < 0:
            raise ValidationError("offset cannot be negative", field="offset")
        day = self._day(as_of, effective_on)

        def read(cur: Cursor) -> dict[str, Any]:
            snap = self._snapshot(cur, "obligations", as_of, as_of_position)
            agencies = _obl_agencies(cur, snap)
            if agency not in agencies:
                raise UnknownAgency(f"unknown agency {agency!r}", field="agency")
            facts = _agency_facts(agencies)
            via: dict[str, str] = {}  # code whose tasks we look at -> how they reach us
            for code in agencies:
                if code != agency and responsible_agency(code, day, facts)[0] == agency:
                    via[code] = "successor"
            me = agencies[agency]
            for code, row in agencies.items():
                if (include_groups and row["level"] == "group"
                        and me["level"] in row["member_levels"]):
                    via[code] = "group"
            via[agency] = "self"
            # Only open obligations are listed: the tasks settled by the day are left out.
            owing_on = None if include_closed else day
            links, tasks = _agency_links(cur, snap, via, owing_on)
            # Read every occurrence in full, once, when all may be rendered (no limit, or no
            # more tasks than a page); else judge on a few columns and read the page's later.
            # The occurrences are asked for by the task ids just read (``select_in``): a
            # subquery over the links scanned the agency's link versions a second time.
            whole = limit is None or len(tasks) <= limit
            if whole:
                wanted, columns, parse = tasks, _OCC_COLUMNS, _obl_occurrences
            else:  # the tasks whose links carry their occurrence are judged from the links
                wanted = [tid for tid, task in tasks.items() if not task.inline]
                columns, parse = _OCC_JUDGE_COLUMNS, _occurrence_states
            with snap.select_in_ahead(cur, "obl_occurrence", columns, "task_id",
                                      wanted) as occurrence_rows:
                # judged while PostgreSQL reads the other tasks' occurrences
                statuses = {tid: _judge_inline(task, day)
                            for tid, task in tasks.items() if task.inline}
                judging = parse(occurrence_rows())
            for tid, task in tasks.items():
                if not task.inline:
                    found = judging.get(tid, _NOTHING)
                    statuses[tid] = _judge(task.deadline, task.assigned_on, task.cancelled_on,
                                           _states(found) if whole else found, day)
            judged = []
            seen: set[str] = set()
            linked_twice = False
            for code, tid, role in links:
                task = tasks[tid]
                how = via[code]
                if tid in seen:  # a task linked twice (lead and via a group)
                    linked_twice = True
                seen.add(tid)
                for occ, status in statuses[tid]:
                    if how == "successor" and status not in MOVING_TO_SUCCESSOR:
                        continue  # stays with the old lead
                    if not include_closed and status not in OPEN_STATUSES:
                        continue
                    judged.append(_Judged(task, occ, status,
                                          role if how != "group" else f"group_{role}",
                                          None if how == "self" else code))
            if linked_twice:  # else each obligation is in ``judged`` once already
                judged = _best_role_per_obligation(judged)
            judged.sort(key=_Judged.order)
            counts = _counts(j.status for j in judged)
            total = len(judged)
            shown = judged[offset:offset + limit] if limit is not None else judged[offset:]
            page_tasks = {j.task.task_id for j in shown}
            page = [("obl_task", _PAGE_COLUMNS, "task_id", page_tasks),
                    ("obl_progress", _PROGRESS_COLUMNS, "task_id", page_tasks)]
            if not whole:
                page.append(("obl_occurrence", _OCC_COLUMNS, "task_id", page_tasks))
            with snap.selects_in_ahead(cur, page) as fetched:
                # Freed while PostgreSQL reads the page: an agency's thousands of judged
                # obligations took milliseconds to free when the answer returned.
                del links, tasks, statuses, judged, seen
                if not whole:
                    del judging
                details = _obl_tasks(fetched[0](), _PAGE_COLUMNS)
                _add_progress(details, fetched[1]())
                occurrences = judging if whole else _obl_occurrences(fetched[2]())
            rows = [j.render(details[j.task.task_id], occurrences, day) for j in shown]
            head = head_on(facts[agency].tenures, day)
            answer = {
                "agency": {**_agency_json(agency, me), "head": _tenure_json(head)},
                "effective_on": day.isoformat(), "as_of": snap.meta(),
                "counts": counts, "obligations": rows,
            }
            if limit is not None or offset:
                answer["page"] = {"offset": offset, "limit": limit, "total": total}
            return answer

        return self._read(read, long=True)

    def directive_summary(self, directive: str, *, as_of: datetime | None = None,
                          as_of_position: int | None = None,
                          effective_on: date | None = None) -> dict[str, Any]:
        """A directive's progress on a day: counts by status, per lead, and every obligation."""
        day = self._day(as_of, effective_on)

        def read(cur: Cursor) -> dict[str, Any]:
            snap = self._snapshot(cur, "obligations", as_of, as_of_position)
            columns = ("directive_id", "number", "doc_type", "issuer", "assigning_office",
                       "issued_on", "title", "revoked_on", "task_ordinals")
            found = snap.select(cur, "obl_directive", columns, "directive_id=%s OR number=%s",
                                (directive, directive))
            if not found:
                raise UnknownDirective(f"no directive {directive}", field="directive")
            if len(found) > 1:
                raise ValidationError(f"several directives are numbered {directive}; give its "
                                      "id", field="directive")
            info = dict(zip(columns, found[0], strict=True))
            info["task_ordinals"] = loads(info["task_ordinals"])
            tasks = _obl_tasks(snap.select(cur, "obl_task", _TASK_COLUMNS, "directive_id=%s",
                                           (info["directive_id"],)), _TASK_COLUMNS)
            _add_progress(tasks, snap.select_in(cur, "obl_progress", _PROGRESS_COLUMNS,
                                                "task_id", tasks))
            occurrences = _obl_occurrences(
                snap.select_in(cur, "obl_occurrence", _OCC_COLUMNS, "task_id", tasks))
            rows = []
            for tid in tasks:
                rows += _task_obligations(tasks[tid], occurrences.get(tid, {}), day)
            # (ISO dates order as the days do; an obligation without one comes last)
            rows.sort(key=lambda r: (_ordinal_key(r["ordinal"]), r["original_due"] is None,
                                     r["original_due"] or ""))
            by_lead: dict[str, Counter[str]] = defaultdict(Counter)
            for row in rows:
                by_lead[row["lead"]][row["status"]] += 1
            return {
                "directive": info, "effective_on": day.isoformat(), "as_of": snap.meta(),
                "counts": _counts(r["status"] for r in rows),
                "by_lead": {lead: dict(sorted(c.items())) for lead, c in sorted(by_lead.items())},
                "obligations": rows,
            }

        return self._read(read, long=True)

    def obligation_counts(self, *, as_of: datetime | None = None,
                          as_of_position: int | None = None,
                          effective_on: date | None = None) -> dict[str, Any]:
        """Per agency answering on the day (after mergers): obligations by status and the
        nearest due date of those in progress."""
        day = self._day(as_of, effective_on)

        def read(cur: Cursor) -> dict[str, Any]:
            snap = self._snapshot(cur, "obligations", as_of, as_of_position)
            agencies = _obl_agencies(cur, snap)
            facts = _agency_facts(agencies)
            on = day.isoformat()
            # The lead links of the tasks not final by the day are judged; each statement
            # after the first runs while Python works on what the one before gave.
            rows = snap.select(cur, "obl_task_agency", _LINK_COLUMNS,
                               "role = 'lead' AND (final_on IS NULL OR final_on > %s)", (on,))
            recurring = [row[1] for row in rows if not row[_LINK_INLINE]]
            with snap.select_in_ahead(cur, "obl_occurrence", _OCC_JUDGE_COLUMNS, "task_id",
                                      recurring) as occurrence_rows:
                links, tasks = _decode_links(rows)
                statuses = {tid: _judge_inline(task, day)
                            for tid, task in tasks.items() if task.inline}
                states = _occurrence_states(occurrence_rows())
            counts: dict[str, Counter[TaskStatus]] = defaultdict(Counter)
            nearest: dict[str, date] = {}
            answering: dict[str, str] = {}  # a lead -> who answers for its open obligations

            def owner(lead: str, status: TaskStatus) -> str:
                if status not in MOVING_TO_SUCCESSOR:
                    return lead
                if lead not in answering:
                    answering[lead] = responsible_agency(lead, day, facts)[0]
                return answering[lead]

            # The tasks final by the day are tallied by the database, by their stored status.
            with snap.select_ahead(cur, "obl_task_agency", ("agency", "final_status", "count(*)"),
                                   "role = 'lead' AND final_on <= %s", (on,),
                                   group="agency, final_status") as final_rows:
                for tid, task in tasks.items():
                    if not task.inline:
                        statuses[tid] = _judge(task.deadline, task.assigned_on,
                                               task.cancelled_on, states.get(tid, _NOTHING), day)
                for lead, tid, _ in links:  # (lead links only: one per task)
                    for occ, status in statuses[tid]:
                        who = owner(lead, status)
                        counts[who][status] += 1
                        due = occ.due_on if occ else None
                        if status is TaskStatus.IN_PROGRESS and due is not None and (
                                who not in nearest or due < nearest[who]):
                            nearest[who] = due
                for lead, status, n in final_rows():
                    counts[owner(lead, TaskStatus(status))][TaskStatus(status)] += n
            out = []
            for code in sorted(counts):
                row = agencies.get(code, {})
                out.append({"agency": code, "name": row.get("name"),
                            "counts": _by_value(counts[code]),
                            "next_due": nearest[code].isoformat() if code in nearest else None})
            return {"effective_on": day.isoformat(), "as_of": snap.meta(), "agencies": out}

        return self._read(read, long=True)

    # -- accountability ----------------------------------------------------------------------

    def accountability(self, period: str, agency: str | None = None, *,
                       as_of: datetime | None = None, as_of_position: int | None = None,
                       effective_on: date | None = None) -> dict[str, Any]:
        """Heads' accountability records for a period (DESIGN §5.2; provisional rulebook)."""
        the_period = Period.parse(period)
        day = self._day(as_of, effective_on)
        rulebook = self.ledger.rulebook

        def read(cur: Cursor) -> dict[str, Any]:
            snap = self._snapshot(cur, "accountability", as_of, as_of_position)
            agencies = _acc_agencies(cur, snap)
            if agency is not None and agency not in agencies:
                raise UnknownAgency(f"unknown agency {agency!r}", field="agency")
            # one agency's records: only the tasks it may answer for are gathered
            among = None if agency is None else may_answer_for(agency, agencies)
            obligations, tasks = _acc_obligations(cur, snap, the_period, among)
            acts = _acc_acts(cur, snap, the_period, tasks, among)
            records = assess(the_period, day, obligations, acts, agencies)
            if agency is not None:
                records = [r for r in records if r.answerable.agency == agency]
            out: dict[str, list[dict[str, Any]]] = {"head": [], "group": [], "no_head": []}
            for rec in records:
                out[rec.answerable.kind].append(_record_json(rec, agencies, rulebook))
            return {
                "period": {"key": the_period.key, "label": the_period.label_vi,
                           "start": the_period.start.isoformat(),
                           "end": the_period.end.isoformat(),
                           "closed": the_period.end < day},
                "agency": agency, "effective_on": day.isoformat(), "as_of": snap.meta(),
                "rulebook": {"version": rulebook.version, "provisional": rulebook.provisional,
                             "on_time_threshold": rulebook.on_time_threshold,
                             "note": rulebook.note},
                "provisional": rulebook.provisional,
                "heads": out["head"], "groups": out["group"], "without_head": out["no_head"],
            }

        return self._read(read, long=True)

    # -- audit history -----------------------------------------------------------------------

    def history(self, entity_type: str, entity: str | UUID, *, as_of: datetime | None = None,
                as_of_position: int | None = None, states: bool = True) -> dict[str, Any]:
        """Every event of one directive, task or agency, in order, with who, when, from which
        document, and the entity's state before and after."""
        kind = entity_type.lower()
        entity_uuid = self._resolve(kind, entity)

        def read(cur: Cursor) -> dict[str, Any]:
            snap = self._snapshot(cur, "audit", as_of, as_of_position)
            columns = ("position", "entity_type", "version", "event_type", "from_time")
            rows = snap.select(cur, "aud_event", columns, "entity_id=%s", (str(entity_uuid),),
                               order="version")
            if not rows:
                raise _unknown(kind, entity)
            if rows[0][1].lower() != kind:
                raise ValidationError(f"{entity} is a {rows[0][1].lower()}, not a {kind}",
                                      field="entity_type")
            # The entity's events up to the last row selected: who acted, from which
            # document, the event's fields (``event_details``), and the changes, a fold of
            # them as JSON values exactly as they read when the projection stored them.
            history = select_histories(cur, self.db, [entity_uuid], rows[-1][0]).get(
                entity_uuid, [])
            recorded = dict(history)
            deltas = {position: loads(dumps(delta)) for position, delta
                      in entity_steps(history)}
            events, flat = [], {}
            for position, _, version, event_type, from_time in rows:
                delta = deltas[position]
                event = {
                    "position": position, "type": event_type, "version": version,
                    **event_details(recorded[position], _time_iso(from_time)),
                    "changes": delta,
                }
                if states:
                    event["state_before"] = unflatten(flat) if flat else None
                flat = apply_changes(flat, delta)
                if states:
                    event["state_after"] = unflatten(flat)
                events.append(event)
            return {"entity_type": kind, "entity_id": str(entity_uuid),
                    "as_of": snap.meta(), "events": events}

        return self._read(read, long=True)

    def _resolve(self, kind: str, entity: str | UUID) -> UUID:
        if kind not in ("task", "directive", "agency"):
            raise ValidationError(f"history is kept for task, directive and agency, not {kind!r}",
                                  field="entity_type")
        if isinstance(entity, UUID):
            return entity
        text = str(entity).strip()
        try:
            return UUID(text)
        except ValueError:
            pass
        if kind == "agency":
            return agency_id(text)
        if kind == "directive":
            return self.ledger.find_directive(text).id
        if "#" not in text:
            raise ValidationError(f"{text!r} is neither a task id nor '<number>#<ordinal>'",
                                  field="task")
        number, _, ordinal = text.rpartition("#")
        return task_id(self.ledger.find_directive(number).id, ordinal)


# -- obligations helpers ---------------------------------------------------------------------


def _time_iso(text: str | None) -> str | None:
    moment = parse_ledger_time(text)
    return moment.isoformat() if moment else None


def _unknown(kind: str, entity: Any) -> Exception:
    if kind == "agency":
        return UnknownAgency(f"unknown agency {entity!r}", field="agency")
    if kind == "directive":
        return UnknownDirective(f"unknown directive {entity!r}", field="directive")
    return UnknownTask(f"unknown task {entity!r}", field="task")


def _obl_agencies(cur: Cursor, snap: Snapshot) -> dict[str, dict[str, Any]]:
    columns = ("code", "name", "level", "status", "parent", "successor", "ended_on",
               "member_levels", "heads")
    out = {}
    for row in snap.select(cur, "obl_agency", columns):
        item = dict(zip(columns, row, strict=True))
        item["member_levels"] = loads(item["member_levels"])
        item["heads"] = loads(item["heads"])
        out[item["code"]] = item
    return out


def _agency_facts(agencies: Mapping[str, Mapping[str, Any]]) -> dict[str, AgencyFacts]:
    facts = {}
    for code, row in agencies.items():
        merged = row["status"] == "merged"
        tenures = tuple(
            Tenure(h["person"], h["position"], date.fromisoformat(h["from_on"]),
                   _date(h["to_on"]), h["acting"]) for h in row.get("heads") or ())
        facts[code] = AgencyFacts(code, row["name"], row["level"] == "group",
                                  row["successor"] if merged else None,
                                  _date(row["ended_on"]) if merged else None, None, tenures)
    return facts


def _agency_json(code: str, row: Mapping[str, Any]) -> dict[str, Any]:
    return {"code": code, "name": row["name"], "level": row["level"], "status": row["status"],
            "successor": row["successor"], "ended_on": row["ended_on"]}


def _tenure_json(tenure: Tenure | None) -> dict[str, Any] | None:
    if tenure is None:
        return None
    return {"person": tenure.person, "position": tenure.position,
            "from": tenure.from_on.isoformat(), "to": tenure.to_on.isoformat()
            if tenure.to_on else None, "acting": tenure.acting}


_JUDGE_COLUMNS = ("task_id", "directive_id", "directive_number", "ordinal", "lead", "deadline",
                  "assigned_on", "cancelled_on")  # what a task's statuses and order need
_DETAIL_COLUMNS = ("task_id", "content", "deliverable", "coordinating")
# The rest of a rendered obligation: the above, and the task's progress (``_add_progress``).
_PROGRESS_COLUMNS = ("task_id", "reports", "last_progress")
_TASK_COLUMNS = _JUDGE_COLUMNS + _DETAIL_COLUMNS[1:]
# A task as its links carry it (``LINK_JUDGING``, ``_LinkedTask``), and what a rendered
# obligation then reads from the task's own row.
_LINKED_TASK_COLUMNS = ("task_id", *LINK_JUDGING)
_LINK_COLUMNS = ("agency", "task_id", "role", *LINK_JUDGING)
_LINK_INLINE = _LINK_COLUMNS.index("inline")
_PAGE_COLUMNS = ("task_id", "directive_id", "lead", *_DETAIL_COLUMNS[1:])


_UNSETTLED = f"{or_unset('settled_on')} > %s"  # as the links' as-of index has it


class _LinkedTask(NamedTuple):
    """A task as its links carry it (``_LINKED_TASK_COLUMNS``), decoded: an agency's answer
    judges thousands, so a tuple built in one step (a dict per task, filled column by
    column, took several times as long, and as long again to free)."""

    task_id: str
    directive_number: str
    ordinal: str
    deadline: Deadline
    assigned_on: date
    cancelled_on: date | None
    inline: int
    once_original_due: str | None
    once_due_on: str | None
    once_lateness_due: str | None
    once_completed_on: str | None


def _agency_links(cur: Cursor, snap: Snapshot, via: Iterable[str], owing_on: date | None
                  ) -> tuple[list[tuple[str, str, str]], dict[str, _LinkedTask]]:
    """The links of the tasks ``via``'s agencies lead or coordinate, as (agency, task id,
    role), and those tasks by id as their links carry them. ``owing_on``: only the tasks not
    settled by that day (they may owe something open on it)."""
    where, params = (_UNSETTLED, (owing_on.isoformat(),)) if owing_on else ("", ())
    return _decode_links(snap.select_in(cur, "obl_task_agency", _LINK_COLUMNS, "agency", via,
                                        where, params))


def _decode_links(rows: Iterable[tuple[Any, ...]]
                  ) -> tuple[list[tuple[str, str, str]], dict[str, _LinkedTask]]:
    """``_LINK_COLUMNS`` rows as (agency, task id, role), and their tasks by id."""
    links, tasks = [], {}
    for code, tid, role, number, ordinal, deadline, assigned_on, cancelled_on, *once in rows:
        links.append((code, tid, role))
        if tid not in tasks:  # a task linked twice: once
            tasks[tid] = _LinkedTask(tid, number, ordinal, _deadline(deadline),
                                     date.fromisoformat(assigned_on), _date(cancelled_on), *once)
    return links, tasks


if _LinkedTask._fields != _LINKED_TASK_COLUMNS:  # built by position from the link's columns
    raise ImportError("projections.obligations.LINK_JUDGING changed: update _LinkedTask")


@lru_cache(maxsize=4096)
def _deadline(text: str) -> Deadline:
    """Decoded once per distinct stored deadline (few tasks have one of their own; Deadline
    is immutable, so the same object serves every task that has it)."""
    return _DEADLINE.decode(loads(text))


_DECODERS: dict[str, Callable[[Any], Any]] = {
    "coordinating": loads, "deadline": _deadline,
    "assigned_on": date.fromisoformat, "cancelled_on": _date,
}


def _obl_tasks(rows: Iterable[tuple[Any, ...]], columns: Sequence[str] = _JUDGE_COLUMNS
               ) -> dict[str, dict[str, Any]]:
    """Task rows (of ``columns``) by task id, their stored texts decoded."""
    decoders = [(name, _DECODERS[name]) for name in columns if name in _DECODERS]
    out = {}
    for row in rows:
        item = dict(zip(columns, row, strict=True))
        for name, decode in decoders:
            item[name] = decode(item[name])
        out[item["task_id"]] = item
    return out


def _add_progress(tasks: dict[str, dict[str, Any]], rows: Iterable[tuple[Any, ...]]) -> None:
    """Each task's progress (``_PROGRESS_COLUMNS`` rows; none for a task not reported on
    yet) as its rendered obligations show it: how many reports, and the last one."""
    for task in tasks.values():
        task["progress_reports"], task["last_progress"] = 0, None
    for tid, reports, last in rows:
        tasks[tid]["progress_reports"], tasks[tid]["last_progress"] = reports, loads(last)


_OCC_COLUMNS = ("task_id", "occurrence", "original_due", "due_on", "lateness_due",
                "completed_on", "confirmed_at", "pending_completion_on",
                "pending_completion_document", "extensions_requested", "extensions_granted",
                "extensions_rejected", "pending_extension_due", "rejected_completions")


# What judging an occurrence needs (``occurrence_status``, ``listed_obligations``,
# ``days_overdue`` and the order of the answer): an agency's tasks can have tens of thousands
# of stored occurrences, and the rest of their columns is read for the page's tasks only.
_OCC_JUDGE_COLUMNS = ("task_id", "occurrence", *OCCURRENCE_JUDGING)


def _occurrence_states(rows: Iterable[tuple[Any, ...]]
                       ) -> dict[str, dict[str, OccurrenceState]]:
    """Stored occurrences (``_OCC_JUDGE_COLUMNS`` rows) by task id and key, with only what
    judging needs filled in."""
    out: dict[str, dict[str, OccurrenceState]] = defaultdict(dict)
    for tid, key, *judging in rows:
        out[tid][key] = _judging_state(key, *judging)
    return out


def _judging_state(key: str, original_due: str, due_on: str, lateness_due: str,
                   completed_on: str | None) -> OccurrenceState:
    """An occurrence from its stored ``OCCURRENCE_JUDGING`` columns (the rest left empty)."""
    fromiso = date.fromisoformat
    return OccurrenceState(key, fromiso(original_due), fromiso(due_on), fromiso(lateness_due),
                           completed_on=None if completed_on is None else fromiso(completed_on))


_NOTHING: Mapping[str, Any] = MappingProxyType({})


def _obl_occurrences(rows: Iterable[tuple[Any, ...]]
                     ) -> dict[str, dict[str, tuple[OccurrenceState, dict[str, Any]]]]:
    out: dict[str, dict[str, tuple[OccurrenceState, dict[str, Any]]]] = defaultdict(dict)
    for row in rows:
        item = dict(zip(_OCC_COLUMNS, row, strict=True))
        occ = OccurrenceState(
            key=item["occurrence"], original_due=date.fromisoformat(item["original_due"]),
            due_on=date.fromisoformat(item["due_on"]),
            lateness_due=date.fromisoformat(item["lateness_due"]),
            pending_completion_on=_date(item["pending_completion_on"]),
            pending_completion_document=item["pending_completion_document"],
            completed_on=_date(item["completed_on"]),
            confirmed_at=datetime.fromisoformat(item["confirmed_at"])
            if item["confirmed_at"] else None,
            rejected_completions=item["rejected_completions"],
        )
        out[item["task_id"]][item["occurrence"]] = (occ, item)
    return out


Known = Mapping[str, tuple[OccurrenceState, Mapping[str, Any]]]


def _judge(deadline: Deadline, assigned_on: date, cancelled_on: date | None,
           states: Mapping[str, OccurrenceState], day: date
           ) -> list[tuple[OccurrenceState | None, TaskStatus]]:
    """A task's obligations on a day and their statuses, judged by the domain's rules."""
    return owed_on(deadline, assigned_on=assigned_on, cancelled_on=cancelled_on,
                   occurrences=states, on=day)


def _states(known: Known) -> dict[str, OccurrenceState]:
    """The occurrences of ``known`` without the columns read beside them."""
    return {key: occ for key, (occ, _) in known.items()}


def _judge_inline(task: _LinkedTask, day: date
                  ) -> list[tuple[OccurrenceState | None, TaskStatus]]:
    """``_judge`` of a task whose links carry its one stored occurrence, if any (``inline``:
    its ``once_*`` columns), so that no occurrence is read for it."""
    occ = None if task.once_original_due is None else _judging_state(
        ONCE, task.once_original_due, task.once_due_on, task.once_lateness_due,
        task.once_completed_on)
    return owed_once_on(task.deadline, assigned_on=task.assigned_on,
                        cancelled_on=task.cancelled_on, occurrence=occ, on=day)


def _task_obligations(task: Mapping[str, Any], known: Known, day: date
                      ) -> list[dict[str, Any]]:
    """The task's obligations on a day, judged and rendered (``task``: every column)."""
    return [_obligation_row(task, occ, status, known, day) for occ, status in _judge(
        task["deadline"], task["assigned_on"], task["cancelled_on"], _states(known), day)]


def _obligation_row(task: Mapping[str, Any], occ: OccurrenceState | None, status: TaskStatus,
                    known: Known, day: date) -> dict[str, Any]:
    """One obligation as the API and the CLI show it, ready for JSON (dates as ISO text, the
    status with its Vietnamese label): a page renders hundreds, so in one pass."""
    deadline: Deadline = task["deadline"]
    extra = known[occ.key][1] if occ is not None and occ.key in known else None
    cancelled_on = task["cancelled_on"]
    row = {
        "task_id": task["task_id"], "directive_id": task["directive_id"],
        "directive_number": task["directive_number"], "ordinal": task["ordinal"],
        "reference": f"{task['directive_number']}#{task['ordinal']}",
        "content": task["content"], "deliverable": task["deliverable"],
        "lead": task["lead"], "coordinating": task["coordinating"],
        "deadline_text": deadline.text, "deadline_kind": deadline.kind.value,
        "occurrence": None, "original_due": None, "due_on": None, "lateness_due": None,
        "extended": bool(extra and extra["extensions_granted"]),
        "extensions": {
            "requested": extra["extensions_requested"] if extra else 0,
            "granted": extra["extensions_granted"] if extra else 0,
            "rejected": extra["extensions_rejected"] if extra else 0,
            "pending_due": extra["pending_extension_due"] if extra else None,
        },
        "status": status.value, "status_label": status.label_vi, "days_overdue": 0,
        "completed_on": None, "pending_completion_on": None, "rejected_completions": 0,
        "progress_reports": task["progress_reports"],
        "last_progress": task["last_progress"],
        "cancelled_on": None if cancelled_on is None else cancelled_on.isoformat(),
    }
    if occ is not None:
        row.update(
            occurrence=occ.key, original_due=occ.original_due.isoformat(),
            due_on=occ.due_on.isoformat(), lateness_due=occ.lateness_due.isoformat(),
            completed_on=None if occ.completed_on is None else occ.completed_on.isoformat(),
            pending_completion_on=None if occ.pending_completion_on is None
            else occ.pending_completion_on.isoformat(),
            rejected_completions=occ.rejected_completions)
        if status is TaskStatus.OVERDUE or status is TaskStatus.DONE_LATE:
            row["days_overdue"] = days_overdue(occ, day)
    return row


_ROLE_RANK = {"lead": 0, "coordinating": 1, "group_lead": 2, "group_coordinating": 3}


@dataclass(slots=True)
class _Judged:
    """One obligation of an agency, judged but not yet rendered."""

    task: _LinkedTask
    occ: OccurrenceState | None
    status: TaskStatus
    role: str
    via: str | None

    def order(self) -> tuple:
        occ, task = self.occ, self.task
        return (_STATUS_ORDER[self.status], occ.due_on if occ else date.max,
                task.directive_number, _ordinal_key(task.ordinal),
                occ.key if occ else "", self.role)

    def render(self, details: Mapping[str, Any], occurrences: Mapping[str, Known],
               day: date) -> dict[str, Any]:
        """``details``: the task's other columns; ``occurrences``: its stored occurrences
        in full (``self.occ`` may hold only what judging needs)."""
        known = occurrences.get(self.task.task_id, {})
        occ = self.occ
        if occ is not None and occ.key in known:
            occ = known[occ.key][0]
        task = self.task  # (what the row shows of it beside ``details``)
        row = _obligation_row({**details, "directive_number": task.directive_number,
                               "ordinal": task.ordinal, "deadline": task.deadline,
                               "cancelled_on": task.cancelled_on}, occ, self.status, known, day)
        row.update(role=self.role, via=self.via)
        return row


def _best_role_per_obligation(judged: Iterable[_Judged]) -> list[_Judged]:
    """One row per obligation: an agency that leads a task and also belongs to a group that
    coordinates it sees it once, as lead."""
    best: dict[tuple[str, str | None], tuple[tuple, _Judged]] = {}
    for item in judged:
        key = (item.task.task_id, item.occ.key if item.occ else None)
        rank = (_ROLE_RANK[item.role], item.via is not None, item.via or "")
        if key not in best or rank < best[key][0]:
            best[key] = (rank, item)
    return [item for _, item in best.values()]


_ordinal_key = lru_cache(maxsize=4096)(ordinal_key)  # per distinct ordinal, not per row


def _counts(statuses: Iterable[str]) -> dict[str, int]:
    """How many obligations have each status (``TaskStatus`` members or their values), by
    status value. (Members are counted as they come: ``.value`` is a descriptor call, too
    dear for each of an agency's thousands of obligations.)"""
    return _by_value(Counter(statuses))


def _by_value(tally: Counter[Any]) -> dict[str, int]:
    """A tally of statuses (members or values) by status value, in the order of the values."""
    return dict(sorted((str(status), n) for status, n in tally.items()))


# -- accountability helpers ------------------------------------------------------------------


def _acc_agencies(cur: Cursor, snap: Snapshot) -> dict[str, AgencyFacts]:
    tenures: dict[str, list[Tenure]] = defaultdict(list)
    head_columns = ("agency", "person", "from_on", "acting", "position", "to_on",
                    "appointed_at", "left_at")
    for row in snap.select(cur, "acc_head", head_columns, order="agency, from_on, person"):
        item = dict(zip(head_columns, row, strict=True))
        tenures[item["agency"]].append(Tenure(
            item["person"], item["position"], date.fromisoformat(item["from_on"]),
            _date(item["to_on"]), bool(item["acting"]), item["appointed_at"], item["left_at"]))
    columns = ("code", "name", "level", "is_group", "successor", "merged_on", "merged_at")
    out = {}
    for row in snap.select(cur, "acc_agency", columns):
        item = dict(zip(columns, row, strict=True))
        out[item["code"]] = AgencyFacts(
            item["code"], item["name"], bool(item["is_group"]), item["successor"],
            _date(item["merged_on"]), item["merged_at"], tuple(tenures.get(item["code"], ())))
    return out


_ACC_TASK_COLUMNS = ("task_id", "directive_number", "ordinal", "content", "deadline",
                     "deadline_kind", "due_on", "assigned_on", "cancelled_on", "leads",
                     "assigned_at", "triggered_at", "cancelled_at")


_AccTasks = dict[str, dict[str, Any]]  # by task id


def _acc_obligations(cur: Cursor, snap: Snapshot, period: Period,
                     among: frozenset[str] | None = None
                     ) -> tuple[list[ObligationFacts], _AccTasks]:
    """Every obligation that can count in the period: those the ledger holds state for whose
    due or completion date falls in it, and those nothing has happened to yet, derived from
    the deadlines of the tasks that can fall due in it. ``among``: only those of the tasks
    one of these agencies led at some time (``may_answer_for``); the other tasks and their
    occurrences are not read."""
    start, end = period.start.isoformat(), period.end.isoformat()
    occ_columns = ("task_id", "occurrence", "original_due", "lateness_due", "completed_on",
                   "due_evidence", "completion_evidence")
    led, led_params = _led_among(among)
    in_period = ("((lateness_due BETWEEN %s AND %s) OR (completed_on BETWEEN %s AND %s) OR "
                 "(original_due BETWEEN %s AND %s))")
    params: tuple[Any, ...] = (start, end, start, end, start, end)
    if among is not None:  # of the tasks kept: the others' occurrences are not sent
        valid, bound = snap.where()
        in_period += (f" AND task_id IN (SELECT task_id FROM {snap.table('acc_task')} "
                      f"WHERE {valid} AND {led})")
        params += (*bound, *led_params)
    stored = snap.select(cur, "acc_occurrence", occ_columns, in_period, params)
    wanted = {r[0] for r in stored}
    task_rows = snap.select(cur, "acc_task", _ACC_TASK_COLUMNS,
                            f"(deadline_kind=%s OR (due_on BETWEEN %s AND %s)) AND {led}",
                            (DeadlineKind.RECURRING.value, start, end, *led_params))
    known_ids = {r[0] for r in task_rows}
    task_rows += snap.select_in(cur, "acc_task", _ACC_TASK_COLUMNS, "task_id",
                                wanted - known_ids, led, led_params)
    tasks: _AccTasks = {}
    for (tid, number, ordinal, content, deadline, _kind, _due, assigned_on, cancelled_on, leads,
         assigned_at, triggered_at, cancelled_at) in task_rows:  # _ACC_TASK_COLUMNS
        tasks[tid] = {
            "ref": TaskRef(tid, number, ordinal, content), "deadline": _deadline(deadline),
            "assigned_on": date.fromisoformat(assigned_on), "cancelled_on": _date(cancelled_on),
            "leads": _lead_spells(leads),
            # the positions proving the task's due dates and its cancellation, if any
            "base_evidence": tuple(p for p in (assigned_at, triggered_at) if p),
            "cancel_evidence": (cancelled_at,) if cancelled_at else (),
        }
    out: list[ObligationFacts] = []
    stored_keys: set[tuple[str, str]] = set()
    fromiso = date.fromisoformat
    for (tid, key, original_due, lateness_due, completed_on, due_evidence,
         completion_evidence) in stored:  # occ_columns
        task = tasks[tid]  # (with ``among``, the subquery sent only the kept tasks' rows)
        stored_keys.add((tid, key))
        out.append(ObligationFacts(
            task["ref"], key, fromiso(original_due), fromiso(lateness_due),
            _date(completed_on), task["cancelled_on"], task["leads"],
            (*task["base_evidence"], *loads(due_evidence)), tuple(loads(completion_evidence)),
            task["cancel_evidence"]))
    for tid, task in tasks.items():
        deadline: Deadline = task["deadline"]
        if deadline.kind is DeadlineKind.STANDING or deadline.is_dormant:
            continue
        for occurrence in deadline.occurrences(task["assigned_on"], period.end):
            if not period.contains(occurrence.due_on) or (tid, occurrence.key) in stored_keys:
                continue
            out.append(ObligationFacts(
                task["ref"], occurrence.key, occurrence.due_on, occurrence.due_on, None,
                task["cancelled_on"], task["leads"], task["base_evidence"], (),
                task["cancel_evidence"]))
    return out, tasks


def _lead_spells(text: str) -> tuple[LeadSpell, ...]:
    """A task's stored lead spells ([agency, from day, position], ...)."""
    return tuple(LeadSpell(a, date.fromisoformat(f), p) for a, f, p in loads(text))


def _acc_acts(cur: Cursor, snap: Snapshot, period: Period, tasks: _AccTasks,
              among: frozenset[str] | None = None) -> list[ActFacts]:
    """The acts recorded in the period (``among``: only those on the tasks kept, as in
    ``_acc_obligations``); ``tasks`` gains the tasks they concern that it did not hold."""
    columns = ("task_id", "occurrence", "position", "kind", "day", "timely", "outcome",
               "evidence")
    rows = snap.select(cur, "acc_act", columns, "day BETWEEN %s AND %s",
                       (period.start.isoformat(), period.end.isoformat()))
    missing = {r[0] for r in rows} - set(tasks)
    if missing:
        led, led_params = _led_among(among)
        for row in snap.select_in(cur, "acc_task", _ACC_TASK_COLUMNS, "task_id", missing, led,
                                  led_params):
            item = dict(zip(_ACC_TASK_COLUMNS, row, strict=True))
            tasks[item["task_id"]] = {
                "ref": TaskRef(item["task_id"], item["directive_number"], item["ordinal"],
                               item["content"]),
                "leads": _lead_spells(item["leads"])}
    out = []
    for row in rows:
        item = dict(zip(columns, row, strict=True))
        task = tasks.get(item["task_id"])
        if task is None:  # a task left out (``among``)
            continue
        out.append(ActFacts(
            task["ref"], item["occurrence"], ActKind(item["kind"]),
            date.fromisoformat(item["day"]), task["leads"], tuple(loads(item["evidence"])),
            None if item["timely"] is None else bool(item["timely"]), item["outcome"]))
    return out


def _led_among(among: frozenset[str] | None) -> tuple[str, tuple[str, ...]]:
    """SQL: the task's stored lead spells (JSON text) name one of ``among`` (None: every
    task), so that the rows of the other tasks are not even sent. A code's JSON string is
    in the text of any spells naming it; a task kept that holds it only elsewhere (or, on
    SQLite, in other letter case) never reaches those agencies' records."""
    if among is None:
        return "TRUE", ()
    patterns = tuple("%" + text.replace("!", "!!").replace("%", "!%").replace("_", "!_") + "%"
                     for text in map(dumps, sorted(among)))
    return "(" + " OR ".join(["leads LIKE %s ESCAPE '!'"] * len(patterns)) + ")", patterns


def _shortfall_json(s: Shortfall) -> dict[str, Any]:
    return {
        "kind": s.kind.value, "task_id": s.task.task_id,
        "reference": f"{s.task.directive_number}#{s.task.ordinal}", "content": s.task.content,
        "occurrence": s.occurrence, "due": s.due.isoformat(),
        "original_due": s.original_due.isoformat() if s.original_due else None,
        "completed_on": s.completed_on.isoformat() if s.completed_on else None,
        "attributed_on": s.day.isoformat(), "evidence": list(s.evidence),
    }


def _record_json(rec: HeadRecord, agencies: Mapping[str, AgencyFacts],
                 rulebook: Any) -> dict[str, Any]:
    who = rec.answerable
    tenure = who.tenure
    facts = agencies.get(who.agency)
    ratio = rec.on_time_ratio
    return {
        "kind": who.kind, "agency": who.agency, "agency_name": facts.name if facts else None,
        "person": tenure.person if tenure else None,
        "position": tenure.position if tenure else None,
        "acting": tenure.acting if tenure else None,
        "tenure": _tenure_json(tenure),
        "fallen_due": rec.fallen_due, "done_on_time": rec.done_on_time,
        "done_late": rec.done_late, "overdue": rec.overdue,
        "overdue_at_period_end": rec.overdue_at_period_end,
        "extensions": {"requested": rec.extensions_requested,
                       "requested_after_expiry": rec.extensions_requested_late,
                       "granted": rec.extensions_granted, "rejected": rec.extensions_rejected},
        "completions_rejected": rec.completions_rejected,
        "on_time_ratio": None if ratio is None else round(ratio, 4),
        "threshold": rulebook.on_time_threshold,
        "meets_threshold": rec.meets_threshold(rulebook),
        "advice": threshold_advice(ratio, rulebook),
        "on_time": [{"task_id": t.task_id, "reference": f"{t.directive_number}#{t.ordinal}",
                     "occurrence": key} for t, key in rec.on_time],
        "shortfalls": [_shortfall_json(s) for s in rec.shortfalls],
    }
