"""The library's mapper, refusing to hand back an event it could not read whole.

The stored state of an event is JSON written by the ledger; a row edited behind its back
can hold anything. The library then either raises its own ``MapperDeserialisationError``
(a bare ValueError to every caller) or, when the JSON still parses, returns an event whose
fields hold whatever was parsed — a dict where its recorded time or its deadline should be
(an edited transcoding tag), a field gone — which fails far from the cause, in a projection
or while rendering. So every field is checked against the type its event class declares.
Every reader (commands loading aggregates, projections, replays, the journal) goes through
this mapper, so each one stops at the damaged row with the same one-line error naming its
position.
"""

from __future__ import annotations

import functools
import types
import typing
from typing import Any

from eventsourcing.persistence import Mapper, MapperDeserialisationError, StoredEvent

from domain.errors import UnreadableEvent, unreadable_event


def unreadable(stored: StoredEvent, why: str) -> UnreadableEvent:
    position = getattr(stored, "id", None)  # notifications carry their position
    where = f"at position {position} " if position is not None else ""
    kind = stored.topic.rpartition(":")[2]
    return unreadable_event(
        f"{where}({kind}, {stored.originator_id} v{stored.originator_version})",
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
    return None


class CheckedMapper(Mapper):
    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        try:
            event = super().to_domain_event(stored_event)
        except MapperDeserialisationError as exc:
            raise unreadable(stored_event, str(exc.__cause__ or exc)) from exc
        why = _misfit(event)
        if why is not None:
            raise unreadable(stored_event, why)
        return event
