"""Inputs of the commands that carry a whole document: a directive with its tasks.

These are plain data as received (strings for deadlines and document numbers); the Ledger
validates and normalises them, so every entry point (CLI importers, HTTP) gets the same
checks and the same error messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date


@dataclass(frozen=True, slots=True)
class TaskSpec:
    ordinal: str
    content: str
    lead: str  # agency code
    deadline: str  # the phrase as written ("Quý IV năm 2021")
    coordinating: tuple[str, ...] = ()
    deliverable: str | None = None
    section: str | None = None
    lead_text: str | None = None  # the cell as written, when codes were resolved from names
    coordinating_text: str | None = None


@dataclass(frozen=True, slots=True)
class DirectiveSpec:
    number: str
    issuer: str  # agency code of the issuing body (UBND tỉnh)
    issued_on: date
    title: str
    assigning_office: str | None = None  # defaults to the issuer
    signer: str | None = None
    signing_capacity: str | None = None  # "TM. UBND", "KT. CHỦ TỊCH"...
    references: tuple[str, ...] = ()
    source_text: str | None = None  # full text, hashed into the event
    plan_last_year: int | None = None  # "giai đoạn 2021 - 2025": recurring tasks end in 2025
    tasks: tuple[TaskSpec, ...] = field(default_factory=tuple)


def ordinal_key(ordinal: str) -> tuple[tuple[int, int | str], ...]:
    """The order of a directive's tasks by their ordinals, which are the document's own text:
    parts split at "." (and "#"), numbers by value and before words ("2" < "10" < "II.1" <
    "a"). Each part is tagged, so a number and a word are never compared with each other."""
    return tuple((0, int(part)) if part.isdecimal() else (1, part)
                 for part in ordinal.replace("#", ".").split("."))
