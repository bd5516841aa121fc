"""Transcodings for what events carry beyond the library's defaults (UUID, Decimal, datetime).

Enumerations travel as their string values (all of ours are StrEnum, which JSON writes as a
plain string), so events stay readable by tools that do not know our classes. ``Deadline``
is stored with its phrase and its normal form side by side.
"""

from __future__ import annotations

from datetime import date
from typing import Any, TypeVar

from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    Transcoding,
    UUIDAsHex,
)

from domain.clock import plausible_day_problem
from domain.deadlines import Deadline, DeadlineKind, Frequency


class DateAsISO(Transcoding):
    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        """The day, or ValueError (the mapper's "unreadable event") for one outside the
        calendar every stated day is checked against when an event is made
        (``require_plausible_days``): an edited year 9999 ran a recurring task's schedule
        into the year 10000, far from the row."""
        day = date.fromisoformat(data)
        problem = plausible_day_problem(day)
        if problem is not None:
            raise ValueError(problem)
        return day


class DeadlineAsDict(Transcoding):
    type = Deadline
    name = "deadline"

    def encode(self, obj: Deadline) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": obj.kind.value, "text": obj.text}
        if obj.due_on is not None:
            out["due_on"] = obj.due_on.isoformat()
        if obj.frequency is not None:
            out["frequency"] = obj.frequency.value
        for name in ("month", "day", "first_year", "last_year", "condition", "note"):
            value = getattr(obj, name)
            if value is not None:
                out[name] = value
        return out

    def decode(self, data: dict[str, Any]) -> Deadline:
        """The deadline, or ValueError (the mapper's "unreadable event") for one no parse
        gives: an edited row must be refused where it is read, not fail later in a view."""
        deadline = Deadline(
            kind=DeadlineKind(data["kind"]),
            text=data["text"],
            due_on=date.fromisoformat(data["due_on"]) if data.get("due_on") else None,
            frequency=Frequency(data["frequency"]) if data.get("frequency") else None,
            month=data.get("month"),
            day=data.get("day"),
            first_year=data.get("first_year"),
            last_year=data.get("last_year"),
            condition=data.get("condition"),
            note=data.get("note"),
        )
        why = deadline.inconsistency()
        if why is not None:
            raise ValueError(why)
        return deadline


def register_ledger_transcodings(transcoder: JSONTranscoder) -> None:
    transcoder.register(DateAsISO())
    transcoder.register(DeadlineAsDict())


T = TypeVar("T", bound=JSONTranscoder)


def ledger_transcoder(cls: type[T] = JSONTranscoder) -> T:  # type: ignore[assignment]
    """A transcoder of ``cls`` registered for the ledger's events: the library's defaults
    (UUID, Decimal, datetime, as ``Application.register_transcodings`` registers them) and
    ours. The ledger's is ``FastJSONTranscoder``; the plain ``JSONTranscoder`` is what the
    benchmarks' baselines and the transcoder's tests compare it with."""
    transcoder = cls()
    for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO()):
        transcoder.register(transcoding)
    register_ledger_transcodings(transcoder)
    return transcoder
