"""The rules of DESIGN §4 as pure functions (no I/O, no clock: time is always an argument).

Two time axes meet here. ``recorded_at`` is when the ledger learnt something (UTC);
``on`` is a calendar day in Vietnam that a person means ("what was overdue on 31/5").
The task state handed to these functions already contains only what the ledger knew at the
moment of interest; the functions then judge that state on a day.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from domain.actors import Actor, Role
from domain.clock import end_of_day, local_date
from domain.errors import NotLeadAgency, NotPermitted, ValidationError
from domain.rulebook import RULEBOOK, Rulebook


class TaskStatus(StrEnum):
    """Categories of the Government Office's task reports."""

    NOT_DUE = "not_due"  # not yet assigned on that day, or waiting for its trigger
    IN_PROGRESS = "in_progress"  # open, before its due date
    OVERDUE = "overdue"  # open, past its due date
    DONE_ON_TIME = "done_on_time"
    DONE_LATE = "done_late"
    NO_DEADLINE = "no_deadline"  # standing obligation: never overdue
    CANCELLED = "cancelled"

    @property
    def label_vi(self) -> str:
        return _LABELS_VI[self]

    @property
    def is_done(self) -> bool:
        return self in (TaskStatus.DONE_ON_TIME, TaskStatus.DONE_LATE)

    @property
    def is_open(self) -> bool:
        """Still owed on the day: neither done nor cancelled."""
        return not self.is_done and self is not TaskStatus.CANCELLED


#: The statuses of an obligation still owed on the day (``TaskStatus.is_open``), as a set for
#: read models that test thousands of statuses per query.
OPEN_STATUSES = frozenset(s for s in TaskStatus if s.is_open)

_LABELS_VI = {
    TaskStatus.NOT_DUE: "chưa đến hạn",
    TaskStatus.IN_PROGRESS: "đang thực hiện",
    TaskStatus.OVERDUE: "quá hạn",
    TaskStatus.DONE_ON_TIME: "hoàn thành đúng hạn",
    TaskStatus.DONE_LATE: "hoàn thành quá hạn",
    TaskStatus.NO_DEADLINE: "không có thời hạn",
    TaskStatus.CANCELLED: "đã hủy",
}


@dataclass(slots=True)
class Extension:
    requested_due: date
    requested_at: datetime
    timely: bool
    granted_due: date | None = None
    decided_at: datetime | None = None
    rejected: bool = False


@dataclass(slots=True)
class OccurrenceState:
    """One period's obligation of a task and everything that happened to it.

    ``due_on`` is the working target (moved by any granted extension); ``lateness_due`` is
    the day lateness is measured against (moved only by an extension requested in time).
    ``original_due`` never changes.
    """

    key: str
    original_due: date
    due_on: date
    lateness_due: date
    extensions: list[Extension] = field(default_factory=list)
    pending_completion_on: date | None = None
    pending_completion_document: str | None = None
    completed_on: date | None = None
    confirmed_at: datetime | None = None
    rejected_completions: int = 0
    progress_reports: int = 0

    def __deepcopy__(self, memo: dict[int, Any]) -> OccurrenceState:
        """Its values shared (immutable), its extensions (changed in place when decided)
        copied: the default deep copy re-created each date through ``__reduce_ex__``."""
        return replace(self, extensions=[replace(ext) for ext in self.extensions])

    @property
    def pending_extension(self) -> Extension | None:
        for ext in self.extensions:
            if ext.granted_due is None and not ext.rejected:
                return ext
        return None

    @property
    def extended(self) -> bool:
        return any(ext.granted_due is not None for ext in self.extensions)

    @property
    def done(self) -> bool:
        return self.completed_on is not None


# -- status ----------------------------------------------------------------------------------


def occurrence_status(
    occ: OccurrenceState,
    on: date,
    *,
    assigned_on: date,
    cancelled_on: date | None,
) -> TaskStatus:
    """Status of one occurrence on a calendar day, judged on what the ledger holds."""
    if cancelled_on is not None and cancelled_on <= on:
        return TaskStatus.CANCELLED
    if occ.completed_on is not None and occ.completed_on <= on:
        on_time = occ.completed_on <= occ.lateness_due
        return TaskStatus.DONE_ON_TIME if on_time else TaskStatus.DONE_LATE
    if on < assigned_on:
        return TaskStatus.NOT_DUE
    return TaskStatus.OVERDUE if on > occ.lateness_due else TaskStatus.IN_PROGRESS


def undated_status(
    *, dormant: bool, on: date, assigned_on: date, cancelled_on: date | None,
    completed_on: date | None,
) -> TaskStatus:
    """Status of a task without a due date: standing, or conditional not yet triggered."""
    if cancelled_on is not None and cancelled_on <= on:
        return TaskStatus.CANCELLED
    if completed_on is not None and completed_on <= on:
        return TaskStatus.DONE_ON_TIME
    if dormant or on < assigned_on:
        return TaskStatus.NOT_DUE
    return TaskStatus.NO_DEADLINE


def days_overdue(occ: OccurrenceState, on: date) -> int:
    """Whole days past the due date on ``on`` (0 when not late or already done)."""
    if occ.completed_on is not None and occ.completed_on <= on:
        return max(0, (occ.completed_on - occ.lateness_due).days)
    return max(0, (on - occ.lateness_due).days)


def counts_for_on_time_ratio(status: TaskStatus) -> bool:
    """On-time ratios count only tasks that have fallen due (DESIGN §4)."""
    return status in (TaskStatus.DONE_ON_TIME, TaskStatus.DONE_LATE, TaskStatus.OVERDUE)


# -- extensions ------------------------------------------------------------------------------


def extension_request_is_timely(
    occ: OccurrenceState, recorded_at: datetime, rulebook: Rulebook = RULEBOOK
) -> bool:
    """A request recorded before the due date expires (24:00 local) can cure lateness.

    A request after expiry may still be granted a new target date, but the occurrence stays
    late: lateness is measured against the due date in force when it expired.
    """
    expiry = end_of_day(occ.lateness_due)
    if not rulebook.extension_request_on_due_date_is_timely:
        expiry = end_of_day(occ.lateness_due - timedelta(days=1))
    return recorded_at < expiry


def check_extension_request(occ: OccurrenceState, requested_due: date) -> None:
    if occ.done:
        raise ValidationError(f"occurrence {occ.key} is already completed", field="occurrence")
    if occ.pending_extension is not None:
        raise ValidationError(
            f"an extension to {occ.pending_extension.requested_due:%d/%m/%Y} is already "
            "waiting for a decision",
            field="requested_due",
        )
    if requested_due <= occ.due_on:
        raise ValidationError(
            f"requested due date {requested_due:%d/%m/%Y} must be after the current due date "
            f"{occ.due_on:%d/%m/%Y}",
            field="requested_due",
        )


def check_extension_grant(occ: OccurrenceState, new_due: date) -> Extension:
    pending = occ.pending_extension
    if pending is None:
        raise ValidationError(
            f"no extension request is waiting for a decision on {occ.key}", field="occurrence"
        )
    if new_due <= occ.due_on:
        raise ValidationError(
            f"granted due date {new_due:%d/%m/%Y} must be after the current due date "
            f"{occ.due_on:%d/%m/%Y}",
            field="new_due",
        )
    return pending


# -- completion ------------------------------------------------------------------------------


def check_completion_report(
    occ: OccurrenceState, completed_on: date, recorded_at: datetime, assigned_on: date
) -> None:
    """The completion date is the date of the deliverable document: it cannot be later than
    the moment the ledger records it, nor earlier than the assignment."""
    if occ.done:
        raise ValidationError(f"occurrence {occ.key} is already completed", field="occurrence")
    if occ.pending_completion_on is not None:
        raise ValidationError(
            f"a completion dated {occ.pending_completion_on:%d/%m/%Y} is already waiting for "
            "confirmation",
            field="occurrence",
        )
    recorded_day = local_date(recorded_at)
    if completed_on > recorded_day:
        raise ValidationError(
            f"completion date {completed_on:%d/%m/%Y} is after the day it is recorded "
            f"({recorded_day:%d/%m/%Y}); a completion cannot be reported in advance",
            field="completed_on",
        )
    if completed_on < assigned_on:
        raise ValidationError(
            f"completion date {completed_on:%d/%m/%Y} is before the task was assigned "
            f"({assigned_on:%d/%m/%Y})",
            field="completed_on",
        )


def check_completion_decision(occ: OccurrenceState) -> None:
    if occ.pending_completion_on is None:
        raise ValidationError(
            f"no completion report is waiting for confirmation on {occ.key}", field="occurrence"
        )


# -- who may write ---------------------------------------------------------------------------


class TaskAction(StrEnum):
    REPORT_PROGRESS = "report_progress"
    REQUEST_EXTENSION = "request_extension"
    REPORT_COMPLETION = "report_completion"
    DECIDE = "decide"  # extensions, completions, cancel, reopen, reassign, trigger


def authorize_task_write(
    actor: Actor,
    action: TaskAction,
    *,
    lead: str,
    coordinating: list[str] | tuple[str, ...],
    assigning_office: str,
) -> None:
    """Only the lead agency, its coordinating agencies and the assigning office write to a
    task; inspectors never write. ``lead`` is the agency responsible today (after following
    any merger to its successor)."""
    role = actor.role
    if role is Role.SYSTEM:
        return
    if role is Role.INSPECTOR:
        raise NotPermitted("inspectors read and verify; they never write", scope="task:write")
    if action is TaskAction.DECIDE:
        if role is Role.OFFICE and actor.agency in (None, assigning_office):
            return
        raise NotPermitted(
            f"only the assigning office ({assigning_office}) decides on this task",
            scope=f"office:{assigning_office}",
        )
    if role is not Role.AGENCY:
        raise NotPermitted(
            f"{action.value} is done by the lead agency ({lead}), not by role {role.value}",
            scope=f"agency:{lead}",
        )
    if actor.agency == lead:
        return
    if action is TaskAction.REPORT_PROGRESS and actor.agency in coordinating:
        return
    raise NotLeadAgency(
        f"{actor.agency} is not the lead agency ({lead}) of this task",
        scope=f"agency:{lead}",
    )


def authorize_office(actor: Actor, *, assigning_office: str | None = None) -> None:
    """Issuing and amending directives is the office's work (or the operator's CLI)."""
    if actor.role is Role.SYSTEM:
        return
    if actor.role is Role.OFFICE and (
        assigning_office is None or actor.agency in (None, assigning_office)
    ):
        return
    raise NotPermitted(
        f"only the assigning office{f' ({assigning_office})' if assigning_office else ''} "
        "issues and decides",
        scope="office",
    )


def authorize_admin(actor: Actor) -> None:
    if actor.role in (Role.ADMIN, Role.SYSTEM):
        return
    raise NotPermitted("managing agencies and heads needs the admin role", scope="admin")
