"""Lookup of directives by their printed number.

A directive's id needs (issuer, year, number); people know only the number ("768/QĐ-UBND").
This small aggregate, saved in the same transaction as the directive, maps a number to
the directives that carry it (two provinces can both have a "1791/UBND-TTHC").
"""

from __future__ import annotations

from datetime import date
from typing import Any
from uuid import UUID, uuid5

from domain.base import LedgerAggregate
from domain.ids import LEDGER_NAMESPACE


def directive_number_id(number: str) -> UUID:
    return uuid5(LEDGER_NAMESPACE, f"directive-number:{number}")


class DirectiveNumber(LedgerAggregate):
    @staticmethod
    def create_id(number: str) -> UUID:
        return directive_number_id(number)

    class Registered(LedgerAggregate.Created):
        number: str

    class Indexed(LedgerAggregate.Event):
        directive_id: UUID
        issuer: str
        issued_on: date

        def apply(self, index: DirectiveNumber) -> None:
            index.entries.append((self.directive_id, self.issuer, self.issued_on))

    def __init__(self, number: str, meta: dict[str, Any]) -> None:
        self.number = number
        self.entries: list[tuple[UUID, str, date]] = []

    @classmethod
    def register(cls, *, number: str, meta, timestamp) -> DirectiveNumber:
        return cls._create(cls.Registered, number=number, meta=meta, timestamp=timestamp)

    def add(self, *, directive_id: UUID, issuer: str, issued_on: date, meta, timestamp) -> None:
        self.trigger_event(self.Indexed, directive_id=directive_id, issuer=issuer,
                           issued_on=issued_on, meta=meta, timestamp=timestamp)
