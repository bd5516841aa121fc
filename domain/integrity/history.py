"""Replay for inspectors: the state of the ledger as of a recorded moment, the history walked
event by event with each entity's state before and after, and what changed between two
moments.

"As of T" means what the ledger held at recorded time T (DESIGN §5). Recorded times come
from several processes and are only roughly monotonic along positions, so ledger time is
the running maximum of recorded times: the events as of T are the longest prefix of the
global order whose events were all recorded at or before T. Everything here folds that
prefix with the aggregates' own ``mutate`` — the same fold as ``repository.get(id,
version=v)`` — in a single pass over the journal.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import Enum
from typing import Any
from uuid import UUID

from domain.clock import local_date
from domain.journal import event_type_of, plain
from domain.specs import ordinal_key

PAGE = 1000
_INTERNAL = {"_id", "_version", "_created_on", "_modified_on", "_pending_events"}


def judged_on(moment: datetime) -> date:
    """The day on which statuses are judged "as of" a moment: the Vietnamese date of the
    moment's last instant before it, so that "as of 31/12" (24:00 of 31/12, DESIGN §3) is
    judged on 31/12 — a task due that day is not yet overdue — while 31/12 10:00 is 31/12."""
    return local_date(moment - timedelta(microseconds=1))


def to_plain(value: Any) -> Any:
    """JSON-ready data for any piece of aggregate state (dataclasses, enums, dates...)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    if isinstance(value, datetime | date | UUID):
        return plain(value)
    return plain(value)


def entity_type(aggregate: Any) -> str:
    return type(aggregate).__name__


def entity_state(aggregate: Any) -> dict[str, Any]:
    """An aggregate's state as plain data (its own fields, plus its version)."""
    state = {k: to_plain(v) for k, v in vars(aggregate).items()
             if k not in _INTERNAL and not k.startswith("_")}
    state["version"] = aggregate.version
    return state


def entity_label(aggregate: Any) -> str:
    kind = entity_type(aggregate)
    if kind == "Task":
        return f"{aggregate.directive_number}#{aggregate.ordinal}"
    if kind == "Agency":
        return aggregate.code
    if kind in ("Directive", "DirectiveNumber"):
        return aggregate.number
    return str(aggregate.id)


def changes(before: dict[str, Any] | None, after: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(field, before, after) for every top-level field that differs."""
    before = before or {}
    return [(k, before.get(k), after.get(k)) for k in after
            if k != "version" and before.get(k) != after.get(k)]


@dataclass(frozen=True)
class Step:
    """One event of the history and what it did to its entity."""

    position: int
    recorded_at: datetime
    event_type: str
    entity_type: str
    entity_id: UUID
    label: str
    version: int
    meta: dict[str, Any]
    before: dict[str, Any] | None
    after: dict[str, Any]

    @property
    def changed(self) -> list[tuple[str, Any, Any]]:
        return changes(self.before, self.after)

    def as_json(self) -> dict[str, Any]:
        return {
            "position": self.position, "recorded_at": self.recorded_at.isoformat(),
            "type": self.event_type, "entity_type": self.entity_type,
            "entity_id": str(self.entity_id), "label": self.label, "version": self.version,
            "meta": self.meta, "before": self.before, "after": self.after,
            "changed": [{"field": f, "before": b, "after": a} for f, b, a in self.changed],
        }


class Replayer:
    """Folds the journal forward, one prefix at a time (``advance``), keeping every
    aggregate's current state in memory."""

    def __init__(self, ledger: Any, progress: Callable[[int], None] | None = None) -> None:
        self.ledger = ledger
        self.progress = progress  # called with the size of each page read
        self.aggregates: dict[UUID, Any] = {}
        self.position = 0  # last position folded
        self.ledger_time: datetime | None = None  # running maximum of recorded times
        self._buffer: list[Any] = []  # notifications read, not yet decoded, last first
        self._head: tuple[Any, Any] | None = None  # the next (notification, event) to fold
        self._read_upto = 0
        self._exhausted = False

    def _next(self) -> tuple[Any, Any] | None:
        """The next (notification, event) to fold. Events are decoded one at a time, when
        reached: a row that no longer reads (UnreadableEvent) then stops only the replays
        that need it, and "as of" a moment before the damage is still answered."""
        if self._head is not None:
            return self._head
        if not self._buffer and not self._exhausted:
            page = self.ledger.recorder.select_notifications(
                start=self._read_upto, limit=PAGE, inclusive_of_start=False)
            if not page:
                self._exhausted = True
            else:
                self._read_upto = page[-1].id
                self._buffer = page[::-1]
                if self.progress is not None:
                    self.progress(len(page))
        if not self._buffer:
            return None
        event = self.ledger.mapper.to_domain_event(self._buffer[-1])  # a damaged row stays
        self._head = (self._buffer.pop(), event)
        return self._head

    def steps(self, until: datetime | None) -> Iterator[Step]:
        """Fold up to ``until``, yielding each event with its entity before and after."""
        for step in self._fold(until, record=True):
            assert step is not None
            yield step

    def run(self, until: datetime | None) -> Replayer:
        """Fold every event recorded up to ``until`` (None: all)."""
        for _ in self._fold(until, record=False):
            pass
        return self

    def _fold(self, until: datetime | None, *, record: bool) -> Iterator[Step | None]:
        while True:
            item = self._next()
            if item is None:
                return
            notification, event = item
            if until is not None and event.timestamp > until:
                return  # ledger time has passed the moment: the prefix ends here
            self._head = None
            current = self.aggregates.get(event.originator_id)
            before = entity_state(current) if (record and current is not None) else None
            aggregate = event.mutate(current)
            self.aggregates[event.originator_id] = aggregate
            self.position = notification.id
            if self.ledger_time is None or event.timestamp > self.ledger_time:
                self.ledger_time = event.timestamp
            if record:
                yield Step(
                    position=notification.id, recorded_at=event.timestamp,
                    event_type=event_type_of(notification.topic),
                    entity_type=entity_type(aggregate), entity_id=event.originator_id,
                    label=entity_label(aggregate), version=event.originator_version,
                    meta=dict(getattr(event, "meta", {}) or {}), before=before,
                    after=entity_state(aggregate),
                )
            else:
                yield None

    # -- views -----------------------------------------------------------------------------------

    def of_type(self, kind: str) -> list[Any]:
        return [a for a in self.aggregates.values() if entity_type(a) == kind]

    def snapshot(self, moment: datetime) -> LedgerAsOf:
        on = judged_on(moment)
        directives = sorted(self.of_type("Directive"), key=lambda d: (d.issued_on, d.number))
        tasks = sorted(self.of_type("Task"),
                       key=lambda t: (t.directive_number, ordinal_key(t.ordinal)))
        agencies = sorted(self.of_type("Agency"), key=lambda a: a.code)
        return LedgerAsOf(
            moment=moment, on=on, position=self.position,
            directives=[{
                "id": str(d.id), "number": d.number, "type": d.doc_type, "issuer": d.issuer,
                "issued_on": d.issued_on.isoformat(), "title": d.title,
                "tasks": len(d.task_ordinals), "amended_by": list(d.amended_by),
                "revoked_on": d.revoked_on.isoformat() if d.revoked_on else None,
                "version": d.version,
            } for d in directives],
            tasks=[task_view(t, on) for t in tasks],
            agencies=[agency_view(a, on) for a in agencies],
        )


def task_view(task: Any, on: date) -> dict[str, Any]:
    return {
        "id": str(task.id), "label": f"{task.directive_number}#{task.ordinal}",
        "directive": task.directive_number, "ordinal": task.ordinal, "lead": task.lead,
        "content": task.content, "deadline": task.deadline.text,
        "cancelled_on": task.cancelled_on.isoformat() if task.cancelled_on else None,
        "obligations": [{
            "occurrence": occ.key if occ else None,
            "due_on": occ.due_on.isoformat() if occ else None,
            "original_due": occ.original_due.isoformat() if occ else None,
            "status": status.value,
        } for occ, status in task.obligations(on)],
        "version": task.version,
    }


def agency_view(agency: Any, on: date) -> dict[str, Any]:
    head = agency.head_on(on)
    return {
        "code": agency.code, "name": agency.name, "level": agency.level.value,
        "status": agency.status.value, "successor": agency.successor,
        "head": {"person": head.person, "position": head.position,
                 "from_on": head.from_on.isoformat(), "acting": head.acting} if head else None,
        "heads": [to_plain(t) for t in agency.heads],
        "version": agency.version,
    }


@dataclass
class LedgerAsOf:
    """Everything the ledger held at a moment, with task statuses judged on that day."""

    moment: datetime
    on: date
    position: int
    directives: list[dict[str, Any]]
    tasks: list[dict[str, Any]]
    agencies: list[dict[str, Any]]

    def as_json(self) -> dict[str, Any]:
        return {"as_of": self.moment.isoformat(), "on": self.on.isoformat(),
                "position": self.position, "directives": self.directives,
                "tasks": self.tasks, "agencies": self.agencies}


def state_as_of(ledger: Any, moment: datetime,
                progress: Callable[[int], None] | None = None) -> LedgerAsOf:
    return Replayer(ledger, progress).run(moment).snapshot(moment)


def walk_history(ledger: Any, until: datetime | None, since: datetime | None = None,
                 entity: UUID | None = None,
                 progress: Callable[[int], None] | None = None) -> Iterator[Step]:
    """Every event recorded after ``since`` up to ``until``, each with its entity's state
    before and after it (optionally only one entity's events)."""
    replayer = Replayer(ledger, progress)
    if since is not None:
        replayer.run(since)
    for step in replayer.steps(until):
        if entity is None or step.entity_id == entity:
            yield step


# -- diff ----------------------------------------------------------------------------------------


@dataclass
class EntityChange:
    entity_type: str
    entity_id: str
    label: str
    created: bool
    fields: list[tuple[str, Any, Any]]

    def as_json(self) -> dict[str, Any]:
        return {"entity_type": self.entity_type, "entity_id": self.entity_id,
                "label": self.label, "created": self.created,
                "fields": [{"field": f, "before": b, "after": a} for f, b, a in self.fields]}


@dataclass
class LedgerDiff:
    start: datetime
    end: datetime
    from_position: int
    to_position: int
    events: Counter[str] = field(default_factory=Counter)
    entities: list[EntityChange] = field(default_factory=list)
    statuses: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "from": self.start.isoformat(), "to": self.end.isoformat(),
            "positions": [self.from_position + 1, self.to_position]
            if self.to_position > self.from_position else None,
            "events": dict(sorted(self.events.items())),
            "entities": [c.as_json() for c in self.entities],
            "statuses": self.statuses,
        }


def diff(ledger: Any, start: datetime, end: datetime,
         progress: Callable[[int], None] | None = None) -> LedgerDiff:
    """What the ledger learnt between two moments (events, entities created and changed)
    and how task statuses moved between the two days (also when no event happened: a task
    falls overdue as time passes)."""
    if end < start:
        from domain.errors import ValidationError

        raise ValidationError("--to is before --from", field="to")
    replayer = Replayer(ledger, progress).run(start)
    first = replayer.position
    before_states = {i: entity_state(a) for i, a in replayer.aggregates.items()}
    before_tasks = {str(t.id): task_view(t, judged_on(start)) for t in replayer.of_type("Task")}
    result = LedgerDiff(start=start, end=end, from_position=first, to_position=first)
    touched: dict[UUID, Any] = {}
    for step in replayer.steps(end):
        result.events[step.event_type] += 1
        touched[step.entity_id] = replayer.aggregates[step.entity_id]
    result.to_position = replayer.position
    for the_id, aggregate in touched.items():
        after = entity_state(aggregate)
        result.entities.append(EntityChange(
            entity_type=entity_type(aggregate), entity_id=str(the_id),
            label=entity_label(aggregate), created=the_id not in before_states,
            fields=changes(before_states.get(the_id), after)))
    for task in replayer.of_type("Task"):
        now = task_view(task, judged_on(end))
        then = before_tasks.get(now["id"])
        old = {o["occurrence"]: o["status"] for o in (then["obligations"] if then else [])}
        for obligation in now["obligations"]:
            was = old.get(obligation["occurrence"])
            if was != obligation["status"]:
                result.statuses.append({"task": now["label"], "task_id": now["id"],
                                        "occurrence": obligation["occurrence"],
                                        "before": was, "after": obligation["status"]})
    result.entities.sort(key=lambda c: (c.entity_type, c.label))
    result.statuses.sort(key=lambda s: (s["task"], s["occurrence"] or ""))
    return result
