"""The library's mapper, refusing to hand back an event it could not read whole.

The stored state of an event is JSON written by the ledger; a row edited behind its back
can hold anything. The library then either raises its own ``MapperDeserialisationError``
(a bare ValueError to every caller) or, when the JSON still parses, returns an event whose
fields hold whatever was parsed — a dict where its recorded time should be — which fails
far from the cause. Every reader (commands loading aggregates, projections, replays, the
journal) goes through this mapper, so each one stops at the damaged row with the same
one-line error naming its position.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from eventsourcing.persistence import Mapper, MapperDeserialisationError, StoredEvent

from domain.errors import UnreadableEvent


def unreadable(stored: StoredEvent, why: str) -> UnreadableEvent:
    position = getattr(stored, "id", None)  # notifications carry their position
    where = f"at position {position} " if position is not None else ""
    kind = stored.topic.rpartition(":")[2]
    return UnreadableEvent(
        f"the stored event {where}({kind}, {stored.originator_id} "
        f"v{stored.originator_version}) cannot be read: {why}; the record was altered or "
        "damaged outside the ledger (`ledger verify` reports how)")


class CheckedMapper(Mapper):
    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        try:
            event = super().to_domain_event(stored_event)
        except MapperDeserialisationError as exc:
            raise unreadable(stored_event, str(exc.__cause__ or exc)) from exc
        if not isinstance(event.__dict__.get("timestamp"), datetime):
            raise unreadable(stored_event, "its recorded time is not a moment")
        return event
