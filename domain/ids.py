"""Deterministic identities (DESIGN §2).

A directive's id is derived from (issuer, year, number/symbol), so issuing the same document
twice collides on the aggregate's first version and is refused as a conflict instead of
creating a second copy. A task's id is derived from (directive id, ordinal); an agency's
from its code.
"""

from __future__ import annotations

from uuid import UUID, uuid5

# Fixed for the life of the ledger: changing it would orphan every stored aggregate.
LEDGER_NAMESPACE = UUID("6f1c4f0e-4c2b-5b8e-9a0e-6368696461f0")


def agency_id(code: str) -> UUID:
    return uuid5(LEDGER_NAMESPACE, f"agency:{code}")


def directive_id(issuer: str, year: int, number: str) -> UUID:
    return uuid5(LEDGER_NAMESPACE, f"directive:{issuer}:{year}:{number}")


def task_id(directive: UUID, ordinal: str) -> UUID:
    return uuid5(LEDGER_NAMESPACE, f"task:{directive}:{ordinal}")
