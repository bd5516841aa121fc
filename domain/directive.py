"""Directive (văn bản chỉ đạo, điều hành): the document that creates tasks."""

from __future__ import annotations

from datetime import date
from typing import Any
from uuid import UUID

from domain.base import LedgerAggregate
from domain.errors import InvalidTransition
from domain.ids import directive_id


class Directive(LedgerAggregate):
    @staticmethod
    def create_id(issuer: str, year: int, number: str) -> UUID:
        return directive_id(issuer, year, number)

    class Issued(LedgerAggregate.Created):
        number: str
        doc_type: str
        issuer: str
        assigning_office: str
        signer: str | None
        signing_capacity: str | None
        issued_on: date
        title: str
        references: list[str]
        source_text_hash: str | None
        task_ordinals: list[str]

    class Amended(LedgerAggregate.Event):
        amended_by: str | None
        title: str | None
        references: list[str] | None
        added_task_ordinals: list[str]
        note: str | None

        def apply(self, directive: Directive) -> None:
            if self.title is not None:
                directive.title = self.title
            if self.references is not None:
                directive.references = list(self.references)
            directive.task_ordinals.extend(self.added_task_ordinals)
            if self.amended_by:
                directive.amended_by.append(self.amended_by)

    class Revoked(LedgerAggregate.Event):
        revoked_on: date
        revoked_by: str | None
        reason: str

        def apply(self, directive: Directive) -> None:
            directive.revoked_on = self.revoked_on

    def __init__(
        self, number: str, doc_type: str, issuer: str, assigning_office: str,
        signer: str | None, signing_capacity: str | None, issued_on: date, title: str,
        references: list[str], source_text_hash: str | None, task_ordinals: list[str],
        meta: dict[str, Any],
    ) -> None:
        self.number = number
        self.doc_type = doc_type
        self.issuer = issuer
        self.assigning_office = assigning_office
        self.signer = signer
        self.signing_capacity = signing_capacity
        self.issued_on = issued_on
        self.title = title
        self.references = list(references)
        self.source_text_hash = source_text_hash
        self.task_ordinals = list(task_ordinals)
        self.amended_by: list[str] = []
        self.revoked_on: date | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_on is not None

    @classmethod
    def issue(cls, *, meta, timestamp, **fields: Any) -> Directive:
        year = fields["issued_on"].year
        the_id = directive_id(fields["issuer"], year, fields["number"])
        return cls._create(cls.Issued, id=the_id, meta=meta, timestamp=timestamp, **fields)

    def _require_in_force(self) -> None:
        if self.revoked:
            raise InvalidTransition(
                f"directive {self.number} was revoked on {self.revoked_on:%d/%m/%Y}",
                field="directive",
            )

    def amend(self, *, amended_by: str | None, title: str | None, references: list[str] | None,
              added_task_ordinals: list[str], note: str | None, meta, timestamp) -> None:
        self._require_in_force()
        clash = set(added_task_ordinals) & set(self.task_ordinals)
        if clash:
            raise InvalidTransition(
                f"directive {self.number} already has task(s) {', '.join(sorted(clash))}",
                field="ordinal",
            )
        self.trigger_event(self.Amended, amended_by=amended_by, title=title,
                           references=references, added_task_ordinals=added_task_ordinals,
                           note=note, meta=meta, timestamp=timestamp)

    def revoke(self, *, revoked_on: date, revoked_by: str | None, reason: str, meta,
               timestamp) -> None:
        self._require_in_force()
        self.trigger_event(self.Revoked, revoked_on=revoked_on, revoked_by=revoked_by,
                           reason=reason, meta=meta, timestamp=timestamp)
