"""Tasks (nhiệm vụ): one route per command; reads with ETag, writes with If-Match.

Who may do what is decided by the Ledger (domain/rules.py): the lead agency reports,
requests extensions and reports completion; coordinators report progress; the assigning
office decides; inspectors never write.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response

from domain.actors import CommandContext
from domain.application import Receipt
from domain.clock import local_date
from service.commands import execute
from service.deps import (
    ExpectedVersion,
    IdempotencyKey,
    Reader,
    Services,
    ServicesDep,
    Writer,
    etag,
)
from service.openapi import READ_ERRORS, WRITE_ERRORS
from service.schemas import (
    CancelIn,
    CommandResult,
    CompletionConfirmIn,
    CompletionRejectIn,
    CompletionReportIn,
    ExtensionGrantIn,
    ExtensionRejectIn,
    ExtensionRequestIn,
    ProgressIn,
    QueryDay,
    ReassignIn,
    ReopenIn,
    TaskOut,
    TriggerDeadlineIn,
)
from service.tokens import TokenInfo
from service.views import task_view

router = APIRouter(prefix="/v1/tasks", tags=["tasks"])


def _run(request: Request, svc: Services, token: TokenInfo, key: str | None, body: Any,
         command: Callable[[CommandContext], Receipt]):
    return execute(request, svc, token, command, entity_type="Task",
                   location=lambda entity_id: f"/v1/tasks/{entity_id}", key=key,
                   source_document=body.source_document)


@router.get("/{task_id}", response_model=TaskOut, responses=READ_ERRORS)
def get_task(task_id: UUID, response: Response, svc: ServicesDep, _: Reader,
             on: Annotated[QueryDay, Query(description="Judge statuses on this day "
                                              "(default: today in Vietnam).")] = None):
    """A task: deadline as written and normalised, each obligation's status, progress.
    The ETag is the task's version: send it as If-Match on writes."""
    task = svc.ledger.task(task_id)
    response.headers["ETag"] = etag(task.version)
    return task_view(task, on or local_date(svc.ledger.clock()))


@router.post("/{task_id}/progress-reports", response_model=CommandResult,
             responses=WRITE_ERRORS)
def report_progress(request: Request, task_id: UUID, body: ProgressIn, svc: ServicesDep,
                    token: Writer, key: IdempotencyKey, expected: ExpectedVersion):
    """Báo cáo tiến độ: by the lead agency or a coordinating agency."""
    return _run(request, svc, token, key, body, lambda ctx: svc.ledger.report_progress(
        ctx, task_id, summary=body.summary, reported_on=body.reported_on,
        percent=body.percent, occurrence=body.occurrence, obstacles=body.obstacles,
        expected_version=expected))


@router.post("/{task_id}/extension-requests", response_model=CommandResult,
             responses=WRITE_ERRORS)
def request_extension(request: Request, task_id: UUID, body: ExtensionRequestIn,
                      svc: ServicesDep, token: Writer, key: IdempotencyKey,
                      expected: ExpectedVersion):
    """Đề nghị gia hạn: only the lead agency."""
    return _run(request, svc, token, key, body, lambda ctx: svc.ledger.request_extension(
        ctx, task_id, requested_due=body.requested_due, reason=body.reason,
        occurrence=body.occurrence, expected_version=expected))


@router.post("/{task_id}/extension-grants", response_model=CommandResult,
             responses=WRITE_ERRORS)
def grant_extension(request: Request, task_id: UUID, body: ExtensionGrantIn, svc: ServicesDep,
                    token: Writer, key: IdempotencyKey, expected: ExpectedVersion):
    """Grant the pending extension request: only the assigning office."""
    return _run(request, svc, token, key, body, lambda ctx: svc.ledger.grant_extension(
        ctx, task_id, new_due=body.new_due, note=body.note, occurrence=body.occurrence,
        expected_version=expected))


@router.post("/{task_id}/extension-rejections", response_model=CommandResult,
             responses=WRITE_ERRORS)
def reject_extension(request: Request, task_id: UUID, body: ExtensionRejectIn,
                     svc: ServicesDep, token: Writer, key: IdempotencyKey,
                     expected: ExpectedVersion):
    """Reject the pending extension request: only the assigning office."""
    return _run(request, svc, token, key, body, lambda ctx: svc.ledger.reject_extension(
        ctx, task_id, reason=body.reason, occurrence=body.occurrence,
        expected_version=expected))


@router.post("/{task_id}/completion-reports", response_model=CommandResult,
             responses=WRITE_ERRORS)
def report_completion(request: Request, task_id: UUID, body: CompletionReportIn,
                      svc: ServicesDep, token: Writer, key: IdempotencyKey,
                      expected: ExpectedVersion):
    """Báo cáo hoàn thành: by the lead agency; counts once the office confirms it."""
    return _run(request, svc, token, key, body, lambda ctx: svc.ledger.report_completion(
        ctx, task_id, completed_on=body.completed_on, summary=body.summary,
        document=body.document, occurrence=body.occurrence, expected_version=expected))


@router.post("/{task_id}/completion-confirmations", response_model=CommandResult,
             responses=WRITE_ERRORS)
def confirm_completion(request: Request, task_id: UUID, body: CompletionConfirmIn,
                       svc: ServicesDep, token: Writer, key: IdempotencyKey,
                       expected: ExpectedVersion):
    """Xác nhận hoàn thành: only the assigning office."""
    return _run(request, svc, token, key, body, lambda ctx: svc.ledger.confirm_completion(
        ctx, task_id, note=body.note, occurrence=body.occurrence, expected_version=expected))


@router.post("/{task_id}/completion-rejections", response_model=CommandResult,
             responses=WRITE_ERRORS)
def reject_completion(request: Request, task_id: UUID, body: CompletionRejectIn,
                      svc: ServicesDep, token: Writer, key: IdempotencyKey,
                      expected: ExpectedVersion):
    """Reject a reported completion: the task stays open with its deadline unchanged."""
    return _run(request, svc, token, key, body, lambda ctx: svc.ledger.reject_completion(
        ctx, task_id, reason=body.reason, occurrence=body.occurrence,
        expected_version=expected))


@router.post("/{task_id}/cancellation", response_model=CommandResult, responses=WRITE_ERRORS)
def cancel_task(request: Request, task_id: UUID, body: CancelIn, svc: ServicesDep,
                token: Writer, key: IdempotencyKey, expected: ExpectedVersion):
    return _run(request, svc, token, key, body, lambda ctx: svc.ledger.cancel_task(
        ctx, task_id, reason=body.reason, effective_on=body.effective_on,
        expected_version=expected))


@router.post("/{task_id}/reopening", response_model=CommandResult, responses=WRITE_ERRORS)
def reopen_task(request: Request, task_id: UUID, body: ReopenIn, svc: ServicesDep,
                token: Writer, key: IdempotencyKey, expected: ExpectedVersion):
    """Reopen a cancelled task, or (naming the occurrence) a confirmed completion."""
    return _run(request, svc, token, key, body, lambda ctx: svc.ledger.reopen_task(
        ctx, task_id, reason=body.reason, occurrence=body.occurrence,
        expected_version=expected))


@router.post("/{task_id}/reassignment", response_model=CommandResult, responses=WRITE_ERRORS)
def reassign_task(request: Request, task_id: UUID, body: ReassignIn, svc: ServicesDep,
                  token: Writer, key: IdempotencyKey, expected: ExpectedVersion):
    return _run(request, svc, token, key, body, lambda ctx: svc.ledger.reassign_task(
        ctx, task_id, lead=body.lead, coordinating=body.coordinating, reason=body.reason,
        effective_on=body.effective_on, expected_version=expected))


@router.post("/{task_id}/deadline-trigger", response_model=CommandResult,
             responses=WRITE_ERRORS)
def trigger_deadline(request: Request, task_id: UUID, body: TriggerDeadlineIn,
                     svc: ServicesDep, token: Writer, key: IdempotencyKey,
                     expected: ExpectedVersion):
    """Set the due date of a conditional deadline ("Sau khi có hướng dẫn của Bộ...")."""
    return _run(request, svc, token, key, body, lambda ctx: svc.ledger.trigger_deadline(
        ctx, task_id, due_on=body.due_on, basis=body.basis, expected_version=expected))
