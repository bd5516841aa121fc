"""The library's mapper, refusing to hand back an event it could not read whole.

The stored state of an event is JSON written by the ledger; a row edited behind its back
can hold anything. The library then either raises its own ``MapperDeserialisationError``
(a bare ValueError to every caller) or, when the JSON still parses, returns an event whose
fields hold whatever was parsed — a dict where its recorded time or its deadline should be
(an edited transcoding tag), a field gone — which fails far from the cause, in a projection
or while rendering. So every field is checked against the type its event class declares,
and the recorded time for its time zone (``DateAsISO`` checks each day against the
ledger's calendar). Nor may the row's topic name anything but one of the ledger's events,
or its class version be one the event cannot be upcast from: the library raises whatever
its lookup or the upcaster raised.
Every reader (commands loading aggregates, projections, replays, the journal) goes through
this mapper, so each one stops at the damaged row with the same one-line error naming its
position.
"""

from __future__ import annotations

import functools
import types
import typing
from typing import Any

from eventsourcing.domain import CanMutateAggregate
from eventsourcing.persistence import Mapper, MapperDeserialisationError, StoredEvent
from eventsourcing.utils import TopicError, resolve_topic

from domain.errors import UnreadableEvent, unreadable_event


def stored_event_label(position: int | None, kind: str, originator_id: Any,
                       version: int) -> str:
    """How a refusal names a stored event: its position when the reader knows it, its kind
    (e.g. ``Task.Assigned``), entity and version."""
    where = f"at position {position} " if position is not None else ""
    return f"{where}({kind}, {originator_id} v{version})"


def unreadable(stored: StoredEvent, why: str) -> UnreadableEvent:
    position = getattr(stored, "id", None)  # notifications carry their position
    return unreadable_event(
        stored_event_label(position, stored.topic.rpartition(":")[2], stored.originator_id,
                           stored.originator_version),
        f"cannot be read: {why}")


_MISSING = object()


@functools.cache
def declared_fields(cls: type) -> tuple[tuple[str, tuple[type, ...]], ...]:
    """Each field an event class declares, with the classes its value may be (NoneType for
    an optional one; ``list`` for ``list[str]``). Type variables and class variables are not
    checked. The events' fields are all plain: text, numbers, flags, dates, moments, ids,
    deadlines and lists of text."""
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # an annotation that does not resolve: nothing to check against
        return ()
    out = []
    for name, hint in hints.items():
        if typing.get_origin(hint) is typing.ClassVar:
            continue
        options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        classes = tuple(typing.get_origin(o) or o for o in options)
        if all(isinstance(c, type) for c in classes):
            out.append((name, classes))
    return tuple(out)


def _misfit(event: Any) -> str | None:
    """Why the decoded event is not one its class could have written, or None."""
    state = event.__dict__
    for name, classes in declared_fields(type(event)):
        if isinstance(state.get(name), classes):
            continue
        value = getattr(event, name, _MISSING)  # a class default, if any
        if isinstance(value, classes):
            continue
        if name == "timestamp":
            return "its recorded time is not a moment"
        if value is _MISSING:
            return f"its field {name!r} is missing"
        expected = " or ".join(c.__name__ for c in classes)
        return f"its field {name!r} holds {type(value).__name__}, not {expected}"
    if event.timestamp.tzinfo is None:  # every reader compares it with aware moments
        return "its recorded time has no time zone"
    return None


@functools.lru_cache(maxsize=1024)
def topic_problem(topic: str) -> str | None:
    """Why ``topic`` names none of the ledger's events, or None. (A kind of event written by
    a newer version of the ledger reads the same way: nothing is folded past it either.)"""
    try:
        cls = resolve_topic(topic)
    except TopicError:
        return f"its topic {topic[:80]!r} names no kind of event this ledger knows"
    if not (isinstance(cls, type) and issubclass(cls, CanMutateAggregate)):
        return f"its topic {topic[:80]!r} names something that is not an event"
    return None


class CheckedMapper(Mapper):
    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        why = topic_problem(stored_event.topic)
        if why is not None:
            raise unreadable(stored_event, why)
        try:
            event = super().to_domain_event(stored_event)
        except MapperDeserialisationError as exc:
            raise unreadable(stored_event, str(exc.__cause__ or exc)) from exc
        except Exception as exc:  # the upcasters' (an edited class_version, or state)
            raise unreadable(stored_event, "its state does not upcast to the event's current "
                                           f"version ({type(exc).__name__}: {exc})") from exc
        why = _misfit(event)
        if why is not None:
            raise unreadable(stored_event, why)
        return event
