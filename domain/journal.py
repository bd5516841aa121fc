"""The raw journal: every stored event in global order, as plain data.

This is the form in which events leave the ledger (CLI ``ledger events``, the HTTP journal
and feed, exports): the position, the event type, the entity, the recorded time, the
metadata and the event's own fields, with dates as ISO 8601 strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Mapper, Notification

from domain.deadlines import Deadline
from domain.persistence.transcodings import DeadlineAsDict

_SKIP = {"originator_id", "originator_version", "timestamp", "meta", "originator_topic"}
_DEADLINE = DeadlineAsDict()


@dataclass(frozen=True, slots=True)
class JournalEntry:
    position: int
    event_type: str  # "Task.ExtensionGranted"
    entity_type: str  # "Task"
    entity_id: UUID
    version: int
    recorded_at: datetime
    meta: dict[str, Any]
    data: dict[str, Any]
    event: Any  # the decoded domain event

    def as_json(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "type": self.event_type,
            "entity_type": self.entity_type,
            "entity_id": str(self.entity_id),
            "version": self.version,
            "recorded_at": self.recorded_at.isoformat(),
            "meta": self.meta,
            "data": self.data,
        }


def plain(value: Any) -> Any:
    if isinstance(value, Deadline):
        return _DEADLINE.encode(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def event_type_of(topic: str) -> str:
    """'domain.task:Task.ExtensionGranted' -> 'Task.ExtensionGranted'."""
    return topic.rpartition(":")[2]


def entry_from(notification: Notification, mapper: Mapper) -> JournalEntry:
    event = mapper.to_domain_event(notification)
    event_type = event_type_of(notification.topic)
    data = {k: plain(v) for k, v in vars(event).items() if k not in _SKIP}
    return JournalEntry(
        position=notification.id,
        event_type=event_type,
        entity_type=event_type.partition(".")[0],
        entity_id=event.originator_id,
        version=event.originator_version,
        recorded_at=event.timestamp,
        meta=dict(getattr(event, "meta", {}) or {}),
        data=data,
        event=event,
    )
