"""What a projection is: a fold of the ledger's events into versioned rows.

Each projection folds the events of the aggregates it cares about into per-entity state — the
domain aggregate itself (so the projection applies exactly the domain's own event semantics)
plus whatever the projection tracks beside it (e.g. the positions of the events that prove a
due date) — and *renders* that state as the rows the entity contributes to its tables. The
runner diffs renders before and after each event and writes the row versions; a projection
never reads its own tables while folding.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum
from typing import Any, ClassVar
from uuid import UUID

import orjson

from domain.deadlines import Deadline
from domain.persistence.transcodings import DeadlineAsDict
from domain.task import Task
from projections.tables import Key, Rows, TableSpec, Values, dumps

_DEADLINE = DeadlineAsDict()
LogRow = tuple[str, Key, Values]  # (table, key, values) appended once, never replaced


@dataclass(slots=True)
class EntityState:
    aggregate: Any
    extra: Any
    rendered: Rows


_ENTITY_TYPES: dict[type, str] = {}


def entity_type(event: Any) -> str:
    """'Task' for a Task.Assigned event (the aggregate class's name)."""
    return entity_type_of(type(event))


def entity_type_of(kind: type) -> str:
    """``entity_type`` of an event class."""
    name = _ENTITY_TYPES.get(kind)
    if name is None:
        name = _ENTITY_TYPES[kind] = kind.__qualname__.partition(".")[0]
    return name


class Projection:
    name: ClassVar[str]
    version: ClassVar[int] = 1  # bump when the fold or render changes: forces a rebuild
    tables: ClassVar[tuple[TableSpec, ...]]
    entity_types: ClassVar[frozenset[str]] = frozenset({"Task", "Agency", "Directive"})
    title: ClassVar[str] = ""
    # A stateless projection only indexes events: ``log_rows`` maps each event to rows on its
    # own, so the runner keeps no entity state for it (no aggregate, cache, reload or render).
    stateless: ClassVar[bool] = False

    @classmethod
    def table_prefix(cls) -> str:
        """What the name of each of its tables begins with, in every version of its layout
        (``obl_``, ``acc_``, ``aud_``): how a generation's tables are found whichever code
        created them (``runner.drop_tables``)."""
        return cls.tables[0].name.split("_", 1)[0] + "_"

    def fingerprint(self) -> str:
        text = f"{self.name}:v{self.version}:" + ";".join(t.describe() for t in self.tables)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def spec(self, table: str) -> TableSpec:
        for spec in self.tables:
            if spec.name == table:
                return spec
        raise KeyError(table)

    # -- the fold ----------------------------------------------------------------------------

    def new_extra(self, event: Any, position: int) -> Any:
        return None

    def track(self, state: EntityState, event: Any, position: int) -> None:
        """Update what the projection keeps beside the aggregate (after the event applied)."""

    def fold(self, state: EntityState | None, event: Any, position: int,
             ledger_time: str | None) -> tuple[EntityState, list[LogRow]]:
        aggregate = event.mutate(state.aggregate if state is not None else None)
        return self.advance(state, event, position, aggregate), []

    def advance(self, state: EntityState | None, event: Any, position: int,
                aggregate: Any) -> EntityState:
        """The rest of ``fold`` once the event has been applied: ``aggregate`` is what
        ``event.mutate`` returned (the runner applies an event once for every projection
        holding the same aggregate object)."""
        if state is None:
            state = EntityState(aggregate, self.new_extra(event, position), {})
        else:
            state.aggregate = aggregate
        self.track(state, event, position)
        return state

    def render(self, state: EntityState) -> Rows:
        return {}

    def render_change(self, state: EntityState, event: Any, before: Rows) -> Rows:
        """``render(state)`` after ``event``, given what was rendered before it (``before``).

        A projection may re-render only the rows the event can change and reuse the other
        tables' dicts and rows of ``before`` as they are (they are never mutated): a report
        on one occurrence of a task that recurs for years should not render every year again.
        The result must equal ``render(state)``; the tests check it event by event."""
        return self.render(state)

    def log_rows(self, event: Any, position: int, ledger_time: str | None) -> list[LogRow]:
        """A stateless projection's rows for one event."""
        raise NotImplementedError


def occurrence_changed(event: Any) -> str | None:
    """The one occurrence a task event changes, when it changes nothing else of the task but
    (a progress report) the task's progress; None for any other event. Read off the events'
    ``apply``: each of these touches only ``task.occurrence(self.occurrence)``."""
    if type(event) in _OCCURRENCE_EVENTS:
        return event.occurrence  # None for a Reopened of the task itself
    return None


_OCCURRENCE_EVENTS = frozenset({
    Task.ProgressReported, Task.ExtensionRequested, Task.ExtensionGranted,
    Task.ExtensionRejected, Task.CompletionReported, Task.CompletionConfirmed,
    Task.CompletionRejected, Task.Reopened})


class EntityCache:
    """Least-recently-used per-entity fold state, kept between pages by one runner."""

    def __init__(self, capacity: int = 20_000) -> None:
        self.capacity = capacity
        self.items: OrderedDict[UUID, EntityState] = OrderedDict()

    def get(self, key: UUID) -> EntityState | None:
        state = self.items.get(key)
        if state is not None:
            self.items.move_to_end(key)
        return state

    def pop(self, key: UUID) -> EntityState | None:
        return self.items.pop(key, None)

    def put(self, key: UUID, state: EntityState) -> None:
        self.items[key] = state
        self.items.move_to_end(key)
        while len(self.items) > self.capacity:
            self.items.popitem(last=False)

    def clear(self) -> None:
        self.items.clear()

    def __len__(self) -> int:
        return len(self.items)


# -- plain values ----------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """Domain values as JSON values: dates ISO 8601, enums by value, dataclasses as objects."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Deadline):
        return _DEADLINE.encode(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    return str(value)


_PLAIN_OPTIONS = (orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATACLASS
                  | orjson.OPT_PASSTHROUGH_DATETIME)


def _plain_default(value: Any) -> Any:
    """orjson's hook for what it does not serialise itself the way ``plain`` does."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Deadline):
        return orjson.Fragment(deadline_json(value))  # sorted-key text, written as it is
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, set | frozenset):
        return list(value)
    return str(value)


def dumps_plain(value: Any) -> str:
    """``dumps(plain(value))`` without building the plain copy first: orjson walks the value
    and calls back only for dates, dataclasses and the like. Strings, numbers, enums, UUIDs,
    lists, tuples and str-keyed dicts it writes itself exactly as ``plain`` would have them
    written; anything else it refuses (e.g. a dict with non-str keys) takes the slow path."""
    try:
        return orjson.dumps(value, default=_plain_default, option=_PLAIN_OPTIONS).decode()
    except TypeError:
        return dumps(plain(value))


@functools.lru_cache(maxsize=4096)
def deadline_json(deadline: Deadline) -> str:
    """A deadline's JSON text (deadlines are immutable and shared by many events)."""
    return dumps(plain(deadline))


@functools.lru_cache(maxsize=4096)
def deadline_columns(deadline: Deadline) -> tuple[str, str, str, str | None]:
    """(JSON text, kind, text as written, due date) of a deadline, as the rows store them."""
    return deadline_json(deadline), deadline.kind.value, deadline.text, iso(deadline.due_on)


def iso(day: date | None) -> str | None:
    return None if day is None else day.isoformat()


def chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
