"""Directives (văn bản chỉ đạo, điều hành): issue, amend, revoke; reads with ETag."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response

from domain.clock import local_date
from domain.ids import task_id
from domain.specs import DirectiveSpec, TaskSpec
from service.commands import execute
from service.deps import ExpectedVersion, IdempotencyKey, Reader, ServicesDep, Writer, etag
from service.openapi import READ_ERRORS, WRITE_ERRORS
from service.schemas import (
    AmendDirectiveIn,
    CommandResult,
    DirectiveOut,
    IssueDirectiveIn,
    QueryDay,
    RevokeDirectiveIn,
    TaskIn,
    TaskOut,
)
from service.views import directive_view, task_view

router = APIRouter(prefix="/v1/directives", tags=["directives"])


def _location(entity_id) -> str:
    return f"/v1/directives/{entity_id}"


def task_spec(t: TaskIn) -> TaskSpec:
    return TaskSpec(ordinal=t.ordinal, content=t.content, lead=t.lead, deadline=t.deadline,
                    coordinating=tuple(t.coordinating), deliverable=t.deliverable,
                    section=t.section)


@router.get("", response_model=list[DirectiveOut], responses=READ_ERRORS)
def find_directives(
    svc: ServicesDep, _: Reader,
    number: Annotated[str, Query(min_length=1, max_length=100, examples=["768/QĐ-UBND"],
                                 description="Số, ký hiệu as printed.")],
    issuer: Annotated[str | None, Query(max_length=40)] = None,
):
    """Directives printed with this number (normally one; name the issuer to narrow)."""
    found = svc.ledger.find_directives(number)
    return [directive_view(d) for d in found if issuer in (None, d.issuer)]


@router.get("/{directive_id}", response_model=DirectiveOut, responses=READ_ERRORS)
def get_directive(directive_id: UUID, response: Response, svc: ServicesDep, _: Reader):
    """A directive with its task ids. The ETag is its version: send it as If-Match."""
    directive = svc.ledger.directive(directive_id)
    response.headers["ETag"] = etag(directive.version)
    return directive_view(directive)


@router.get("/{directive_id}/tasks", response_model=list[TaskOut], responses=READ_ERRORS)
def directive_tasks(directive_id: UUID, svc: ServicesDep, _: Reader,
                    on: Annotated[QueryDay, Query(description="Judge statuses on this day "
                                                     "(default: today in Vietnam).")] = None):
    """Every task of a directive with the status of each obligation on a day."""
    directive = svc.ledger.directive(directive_id)
    day = on or local_date(svc.ledger.clock())
    return [task_view(svc.ledger.task(task_id(directive.id, o)), day)
            for o in directive.task_ordinals]


@router.post("", status_code=201, response_model=CommandResult, responses=WRITE_ERRORS)
def issue_directive(request: Request, body: IssueDirectiveIn, svc: ServicesDep, token: Writer,
                    key: IdempotencyKey):
    """Record a directive with all its tasks in one transaction (the assigning office).
    Issuing the same document twice is a conflict (409), not a duplicate."""
    spec = DirectiveSpec(
        number=body.number, issuer=body.issuer, issued_on=body.issued_on, title=body.title,
        assigning_office=body.assigning_office, signer=body.signer,
        signing_capacity=body.signing_capacity, references=tuple(body.references),
        source_text=body.source_text, plan_last_year=body.plan_last_year,
        tasks=tuple(task_spec(t) for t in body.tasks),
    )
    return execute(request, svc, token, lambda ctx: svc.ledger.issue_directive(ctx, spec),
                   entity_type="Directive", location=_location, key=key,
                   source_document=body.source_document, status=201)


@router.post("/{directive_id}/amendments", response_model=CommandResult,
             responses=WRITE_ERRORS)
def amend_directive(request: Request, directive_id: UUID, body: AmendDirectiveIn,
                    svc: ServicesDep, token: Writer, key: IdempotencyKey,
                    expected: ExpectedVersion):
    """Amend title or references, or add tasks."""
    return execute(
        request, svc, token,
        lambda ctx: svc.ledger.amend_directive(
            ctx, directive_id, amended_by=body.amended_by, title=body.title,
            references=body.references, add_tasks=[task_spec(t) for t in body.add_tasks],
            note=body.note, plan_last_year=body.plan_last_year, expected_version=expected),
        entity_type="Directive", location=_location, key=key,
        source_document=body.source_document)


@router.post("/{directive_id}/revocation", response_model=CommandResult,
             responses=WRITE_ERRORS)
def revoke_directive(request: Request, directive_id: UUID, body: RevokeDirectiveIn,
                     svc: ServicesDep, token: Writer, key: IdempotencyKey,
                     expected: ExpectedVersion):
    """Revoke a directive; its open tasks are cancelled in the same transaction."""
    return execute(
        request, svc, token,
        lambda ctx: svc.ledger.revoke_directive(
            ctx, directive_id, revoked_on=body.revoked_on, reason=body.reason,
            revoked_by=body.revoked_by, expected_version=expected),
        entity_type="Directive", location=_location, key=key,
        source_document=body.source_document)
