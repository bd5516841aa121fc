"""Who acts, and the metadata every event carries (DESIGN §2).

``recorded_at`` is the event's own ``timestamp`` (the ledger clock, UTC); the rest of the
metadata travels in each event's ``meta`` field as plain JSON values so that it can be read
by any tool without our classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any
from uuid import uuid4

from domain.errors import ValidationError


class Role(StrEnum):
    OFFICE = "office"  # the assigning office (Văn phòng UBND): issues and decides
    AGENCY = "agency"  # a sở/ban/ngành or UBND cấp huyện/xã: reports on its own tasks
    INSPECTOR = "inspector"  # thanh tra: reads everything, writes nothing
    ADMIN = "admin"  # manages agencies, heads and tokens
    SYSTEM = "system"  # the operator's CLI (imports, maintenance); never issued as a token


@dataclass(frozen=True, slots=True)
class Actor:
    principal: str
    role: Role
    agency: str | None = None

    def __post_init__(self) -> None:
        if not self.principal:
            raise ValidationError("actor: principal must not be empty", field="actor")
        if self.role is Role.AGENCY and not self.agency:
            raise ValidationError("actor: an agency actor must name its agency", field="actor")


@dataclass(frozen=True, slots=True)
class SourceDocument:
    """The document a fact comes from (number + date), e.g. 'Báo cáo 68/BC-SNV, 10/4/2024'."""

    number: str
    issued_on: date | None = None

    def __post_init__(self) -> None:
        from domain.clock import plausible_day_problem
        from domain.text import clean_text

        object.__setattr__(self, "number", clean_text(self.number, "source_document.number",
                                                      max_length=300))
        if self.issued_on is not None and (problem := plausible_day_problem(self.issued_on)):
            raise ValidationError(f"source_document.issued_on: {problem}",
                                  field="source_document.issued_on")

    def as_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "issued_on": self.issued_on.isoformat() if self.issued_on else None,
        }


@dataclass(frozen=True, slots=True)
class CommandContext:
    actor: Actor
    correlation_id: str = field(default_factory=lambda: uuid4().hex)
    causation_id: str | None = None
    source_document: SourceDocument | None = None
    # Callables run inside the insert transaction of this command (e.g. idempotency records).
    after_insert: tuple[Any, ...] = ()

    def meta(self) -> dict[str, Any]:
        return {
            "actor": self.actor.principal,
            "actor_role": self.actor.role.value,
            "actor_agency": self.actor.agency,
            "correlation_id": self.correlation_id,
            "causation_id": self.causation_id,
            "source_document": self.source_document.as_json() if self.source_document else None,
        }


def system_context(principal: str = "cli", source_document: SourceDocument | None = None):
    return CommandContext(Actor(principal, Role.SYSTEM), source_document=source_document)
