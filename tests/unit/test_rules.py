"""DESIGN §4 rules, on the Task aggregate and the pure functions (no I/O)."""

from __future__ import annotations

from copy import deepcopy
from datetime import UTC, date, datetime
from uuid import uuid4

import pytest

from domain.actors import Actor, Role
from domain.clock import LOCAL_TZ
from domain.deadlines import DeadlineContext, parse_deadline
from domain.errors import (
    InvalidTransition,
    NotLeadAgency,
    NotPermitted,
    TaskNotOpen,
    ValidationError,
)
from domain.obligations import MOVING_TO_SUCCESSOR
from domain.rulebook import RULEBOOK
from domain.rules import (
    OPEN_STATUSES,
    TaskAction,
    TaskStatus,
    authorize_task_write,
    counts_for_on_time_ratio,
    days_overdue,
)
from domain.task import Task

META = {"actor": "test"}


def at(local: str) -> datetime:
    """A recorded moment given in Vietnam local time."""
    return datetime.fromisoformat(local).replace(tzinfo=LOCAL_TZ).astimezone(UTC)


def make_task(deadline: str = "chậm nhất ngày 30/8/2022", assigned_on: date = date(2022, 1, 10),
              last_year: int | None = None) -> Task:
    return Task.assign(
        directive_id=uuid4(), directive_number="87/KH-UBND", ordinal="1", section=None,
        content="Xây dựng kế hoạch", deliverable=None, lead="QNG-SNV",
        coordinating=["QNG-STP"], lead_text=None, coordinating_text=None,
        deadline=parse_deadline(deadline, DeadlineContext(assigned_on, last_year)),
        assigned_on=assigned_on, assigning_office="QNG-VPUBND", meta=META,
        timestamp=at(f"{assigned_on.isoformat()} 08:00"),
    )


def status(task: Task, on: date, key: str | None = "once") -> TaskStatus:
    rows = dict((occ.key if occ else None, st) for occ, st in task.obligations(on))
    return rows[key]


# -- status of a task at a moment ------------------------------------------------------------


def test_status_before_on_and_after_the_due_date():
    task = make_task()
    assert status(task, date(2022, 1, 9)) is TaskStatus.NOT_DUE  # before assignment
    assert status(task, date(2022, 8, 30)) is TaskStatus.IN_PROGRESS  # the due day itself
    assert status(task, date(2022, 8, 31)) is TaskStatus.OVERDUE
    occ = task.occurrence("once")
    assert days_overdue(occ, date(2022, 9, 9)) == 10


def test_completion_counts_when_confirmed_and_is_dated_by_its_document():
    task = make_task()
    task.report_completion(occurrence=None, completed_on=date(2022, 8, 29), document=None,
                           summary="Đã ban hành", meta=META, timestamp=at("2022-09-05 10:00"))
    # Reported but not confirmed: still open, and overdue after 30/8.
    assert status(task, date(2022, 9, 6)) is TaskStatus.OVERDUE
    task.confirm_completion(occurrence=None, note=None, meta=META, timestamp=at("2022-09-10 10:00"))
    # Confirmed late, but the document is dated before the due date: done on time.
    assert status(task, date(2022, 9, 10)) is TaskStatus.DONE_ON_TIME
    assert status(task, date(2022, 8, 29)) is TaskStatus.DONE_ON_TIME
    assert status(task, date(2022, 8, 28)) is TaskStatus.IN_PROGRESS


def test_late_completion():
    task = make_task()
    task.report_completion(occurrence=None, completed_on=date(2022, 9, 2), document="15/BC-SNV",
                           summary="x", meta=META, timestamp=at("2022-09-02 16:00"))
    task.confirm_completion(occurrence=None, note=None, meta=META, timestamp=at("2022-09-03 09:00"))
    assert status(task, date(2022, 12, 31)) is TaskStatus.DONE_LATE
    assert days_overdue(task.occurrence("once"), date(2022, 12, 31)) == 3


def test_completion_dated_after_it_was_recorded_is_refused():
    task = make_task()
    with pytest.raises(ValidationError, match="after the day it is recorded"):
        task.report_completion(occurrence=None, completed_on=date(2022, 8, 20), document=None,
                               summary="x", meta=META, timestamp=at("2022-08-19 23:59"))
    # Dated the same local day it is recorded: accepted, even late in the evening UTC-wise.
    task.report_completion(occurrence=None, completed_on=date(2022, 8, 20), document=None,
                           summary="x", meta=META, timestamp=at("2022-08-20 23:30"))


def test_completion_before_assignment_is_refused():
    task = make_task()
    with pytest.raises(ValidationError, match="before the task was assigned"):
        task.report_completion(occurrence=None, completed_on=date(2022, 1, 9), document=None,
                               summary="x", meta=META, timestamp=at("2022-02-01 08:00"))


def test_rejected_completion_reopens_with_the_deadline_unchanged():
    task = make_task()
    task.report_completion(occurrence=None, completed_on=date(2022, 8, 1), document=None,
                           summary="x", meta=META, timestamp=at("2022-08-01 08:00"))
    task.reject_completion(occurrence=None, reason="Sản phẩm chưa đạt", meta=META,
                           timestamp=at("2022-08-05 08:00"))
    occ = task.occurrence("once")
    assert occ.due_on == occ.original_due == date(2022, 8, 30)
    assert occ.rejected_completions == 1
    assert status(task, date(2022, 8, 31)) is TaskStatus.OVERDUE
    with pytest.raises(ValidationError, match="no completion report"):
        task.confirm_completion(occurrence=None, note=None, meta=META,
                                timestamp=at("2022-08-06 08:00"))


# -- extensions --------------------------------------------------------------------------------


def test_request_exactly_on_the_due_date_is_timely_and_cures_lateness():
    task = make_task()
    task.request_extension(occurrence=None, requested_due=date(2022, 9, 30), reason="Chờ số liệu",
                           rulebook=RULEBOOK, meta=META, timestamp=at("2022-08-30 23:59"))
    occ = task.occurrence("once")
    assert occ.pending_extension.timely
    # Granted after the due date: the request was in time, so the grant still cures.
    task.grant_extension(occurrence=None, new_due=None, note=None, meta=META,
                         timestamp=at("2022-09-02 08:00"))
    assert occ.due_on == occ.lateness_due == date(2022, 9, 30)
    assert occ.original_due == date(2022, 8, 30)  # the original deadline is kept
    assert occ.extended
    assert status(task, date(2022, 9, 15)) is TaskStatus.IN_PROGRESS


def test_request_after_expiry_cannot_cure_lateness():
    task = make_task()
    task.request_extension(occurrence=None, requested_due=date(2022, 9, 30), reason="Chậm",
                           rulebook=RULEBOOK, meta=META, timestamp=at("2022-08-31 00:00"))
    occ = task.occurrence("once")
    assert not occ.pending_extension.timely
    task.grant_extension(occurrence=None, new_due=date(2022, 9, 20), note=None, meta=META,
                         timestamp=at("2022-09-01 08:00"))
    assert occ.due_on == date(2022, 9, 20)  # a new working target...
    assert occ.lateness_due == date(2022, 8, 30)  # ...but lateness is not cured
    assert status(task, date(2022, 9, 10)) is TaskStatus.OVERDUE
    task.report_completion(occurrence=None, completed_on=date(2022, 9, 15), document=None,
                           summary="x", meta=META, timestamp=at("2022-09-15 10:00"))
    task.confirm_completion(occurrence=None, note=None, meta=META, timestamp=at("2022-09-16 10:00"))
    assert status(task, date(2022, 9, 16)) is TaskStatus.DONE_LATE


def test_extension_request_rules():
    task = make_task()
    with pytest.raises(ValidationError, match="must be after the current due date"):
        task.request_extension(occurrence=None, requested_due=date(2022, 8, 30), reason="x",
                               rulebook=RULEBOOK, meta=META, timestamp=at("2022-08-01 08:00"))
    task.request_extension(occurrence=None, requested_due=date(2022, 9, 30), reason="x",
                           rulebook=RULEBOOK, meta=META, timestamp=at("2022-08-01 08:00"))
    with pytest.raises(ValidationError, match="already waiting"):
        task.request_extension(occurrence=None, requested_due=date(2022, 10, 30), reason="x",
                               rulebook=RULEBOOK, meta=META, timestamp=at("2022-08-02 08:00"))
    task.reject_extension(occurrence=None, reason="Không có căn cứ", meta=META,
                          timestamp=at("2022-08-03 08:00"))
    with pytest.raises(ValidationError, match="no extension request"):
        task.grant_extension(occurrence=None, new_due=date(2022, 9, 30), note=None, meta=META,
                             timestamp=at("2022-08-04 08:00"))
    assert task.occurrence("once").due_on == date(2022, 8, 30)


def test_strict_rulebook_makes_a_request_on_the_due_date_late():
    from dataclasses import replace

    strict = replace(RULEBOOK, extension_request_on_due_date_is_timely=False)
    task = make_task()
    task.request_extension(occurrence=None, requested_due=date(2022, 9, 30), reason="x",
                           rulebook=strict, meta=META, timestamp=at("2022-08-30 09:00"))
    assert not task.occurrence("once").pending_extension.timely


# -- recurring, standing, conditional ---------------------------------------------------------


def test_recurring_task_has_one_obligation_per_period():
    task = make_task("Trước 25/12 năm báo cáo", assigned_on=date(2021, 8, 26), last_year=2025)
    rows = task.obligations(date(2023, 1, 10))
    assert [(occ.key, st) for occ, st in rows] == [
        ("2021", TaskStatus.OVERDUE), ("2022", TaskStatus.OVERDUE),
        ("2023", TaskStatus.IN_PROGRESS)]
    task.report_completion(occurrence="2022", completed_on=date(2022, 12, 20), document=None,
                           summary="x", meta=META, timestamp=at("2022-12-20 09:00"))
    task.confirm_completion(occurrence="2022", note=None, meta=META,
                            timestamp=at("2022-12-21 09:00"))
    assert status(task, date(2023, 1, 10), "2022") is TaskStatus.DONE_ON_TIME
    assert status(task, date(2023, 1, 10), "2021") is TaskStatus.OVERDUE
    with pytest.raises(ValidationError, match="name the occurrence"):
        task.report_completion(occurrence=None, completed_on=date(2022, 12, 20), document=None,
                               summary="x", meta=META, timestamp=at("2022-12-22 09:00"))
    with pytest.raises(ValidationError, match="after the last year"):
        task.report_completion(occurrence="2026", completed_on=date(2022, 12, 20),
                               document=None, summary="x", meta=META,
                               timestamp=at("2022-12-22 09:00"))


def test_standing_task_is_never_overdue_and_not_counted_in_ratios():
    task = make_task("Thường xuyên")
    [(occ, st)] = task.obligations(date(2030, 1, 1))
    assert occ is None and st is TaskStatus.NO_DEADLINE
    assert not counts_for_on_time_ratio(st)
    with pytest.raises(InvalidTransition, match="standing"):
        task.request_extension(occurrence=None, requested_due=date(2030, 1, 1), reason="x",
                               rulebook=RULEBOOK, meta=META, timestamp=at("2022-02-01 08:00"))


def test_conditional_task_waits_for_its_trigger():
    task = make_task("Sau khi có hướng dẫn của Bộ, ngành TW")
    [(_, st)] = task.obligations(date(2025, 1, 1))
    assert st is TaskStatus.NOT_DUE
    with pytest.raises(InvalidTransition, match="waits for its trigger"):
        task.report_completion(occurrence=None, completed_on=date(2022, 3, 1), document=None,
                               summary="x", meta=META, timestamp=at("2022-03-01 08:00"))
    task.trigger_deadline(due_on=date(2022, 6, 30), basis="Thông tư 01/2022/TT-BNV", meta=META,
                          timestamp=at("2022-03-01 08:00"))
    assert status(task, date(2022, 7, 1)) is TaskStatus.OVERDUE
    with pytest.raises(InvalidTransition, match="already set"):
        task.trigger_deadline(due_on=date(2022, 7, 30), basis="x", meta=META,
                              timestamp=at("2022-03-02 08:00"))


def test_cancelled_task_is_closed_to_writes_until_reopened():
    task = make_task()
    task.cancel(effective_on=date(2022, 5, 1), reason="Không còn phù hợp", meta=META,
                timestamp=at("2022-05-01 08:00"))
    assert status(task, date(2022, 9, 1)) is TaskStatus.CANCELLED
    assert status(task, date(2022, 4, 30)) is TaskStatus.IN_PROGRESS
    with pytest.raises(TaskNotOpen):
        task.report_progress(occurrence=None, reported_on=date(2022, 5, 2), percent=10,
                             summary="x", reporter="QNG-SNV", meta=META,
                             timestamp=at("2022-05-02 08:00"))
    task.reopen(occurrence=None, reason="Khôi phục", meta=META, timestamp=at("2022-05-03 08:00"))
    assert status(task, date(2022, 9, 1)) is TaskStatus.OVERDUE


# -- who may write -----------------------------------------------------------------------------

KW = {"lead": "QNG-SNV", "coordinating": ["QNG-STP"], "assigning_office": "QNG-VPUBND"}


@pytest.mark.parametrize(
    ("actor", "action", "allowed"),
    [
        (Actor("a", Role.AGENCY, "QNG-SNV"), TaskAction.REQUEST_EXTENSION, True),
        (Actor("a", Role.AGENCY, "QNG-SNV"), TaskAction.REPORT_COMPLETION, True),
        (Actor("a", Role.AGENCY, "QNG-STP"), TaskAction.REPORT_PROGRESS, True),
        (Actor("a", Role.AGENCY, "QNG-STP"), TaskAction.REQUEST_EXTENSION, False),
        (Actor("a", Role.AGENCY, "QNG-STP"), TaskAction.REPORT_COMPLETION, False),
        (Actor("a", Role.AGENCY, "QNG-STC"), TaskAction.REPORT_PROGRESS, False),
        (Actor("a", Role.AGENCY, "QNG-SNV"), TaskAction.DECIDE, False),
        (Actor("o", Role.OFFICE, "QNG-VPUBND"), TaskAction.DECIDE, True),
        (Actor("o", Role.OFFICE, "LSN-VPUBND"), TaskAction.DECIDE, False),
        (Actor("o", Role.OFFICE, "QNG-VPUBND"), TaskAction.REQUEST_EXTENSION, False),
        (Actor("i", Role.INSPECTOR), TaskAction.REPORT_PROGRESS, False),
        (Actor("i", Role.INSPECTOR), TaskAction.DECIDE, False),
        (Actor("x", Role.ADMIN), TaskAction.DECIDE, False),
        (Actor("s", Role.SYSTEM), TaskAction.DECIDE, True),
    ],
)
def test_who_may_write_to_a_task(actor, action, allowed):
    if allowed:
        authorize_task_write(actor, action, **KW)
    else:
        with pytest.raises(NotPermitted) as caught:
            authorize_task_write(actor, action, **KW)
        assert caught.value.scope  # names the missing scope
        if action is TaskAction.REQUEST_EXTENSION and actor.role is Role.AGENCY:
            assert isinstance(caught.value, NotLeadAgency)


# -- copies of a task --------------------------------------------------------------------------


def test_a_copy_of_a_task_shares_its_past_progress_reports_but_not_their_list():
    """Every command works on a deep copy of the cached task: the reports it already has
    are records of the past and are shared, a report added to the copy is the copy's own."""
    task = make_task()
    for day in (2, 9):
        task.report_progress(occurrence=None, reported_on=date(2022, 5, day), percent=day,
                             summary=f"Tuần {day}", reporter="QNG-SNV", meta=META,
                             timestamp=at(f"2022-05-{day:02d} 08:00"))
    copy = deepcopy(task)
    assert copy.progress == task.progress
    assert all(mine is theirs for mine, theirs in zip(copy.progress, task.progress,
                                                     strict=True))
    copy.report_progress(occurrence=None, reported_on=date(2022, 5, 16), percent=30,
                         summary="Tuần 16", reporter="QNG-SNV", meta=META,
                         timestamp=at("2022-05-16 08:00"))
    assert [p["summary"] for p in copy.progress] == ["Tuần 2", "Tuần 9", "Tuần 16"]
    assert [p["summary"] for p in task.progress] == ["Tuần 2", "Tuần 9"]
    assert copy.occurrence("once") is not task.occurrence("once")  # mutable: copied


def test_a_merger_moves_only_the_obligations_still_owed_to_the_successor():
    """DESIGN §1: the open ones pass to the successor; a done or cancelled one stays with
    the lead that was accountable for it."""
    assert MOVING_TO_SUCCESSOR == OPEN_STATUSES == {
        TaskStatus.NOT_DUE, TaskStatus.IN_PROGRESS, TaskStatus.OVERDUE, TaskStatus.NO_DEADLINE}
    closed = set(TaskStatus) - OPEN_STATUSES
    assert closed == {TaskStatus.DONE_ON_TIME, TaskStatus.DONE_LATE, TaskStatus.CANCELLED}
    assert all(not s.is_open for s in closed) and all(s.is_open for s in OPEN_STATUSES)
