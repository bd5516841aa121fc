"""The copy of an aggregate a command works on (``LedgerAggregate.__deepcopy__``): the same
state as the original, and nothing a command changes shared with it (the library's cache
keeps the original; a command that fails must leave it as it was)."""

from __future__ import annotations

from copy import deepcopy
from dataclasses import fields, is_dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import uuid4

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.agency import Agency, AgencyLevel
from domain.deadlines import DeadlineContext, parse_deadline
from domain.errors import DomainError
from domain.rulebook import RULEBOOK
from domain.task import Task

META = {"actor": "test"}
START = datetime(2024, 1, 10, 1, 0, tzinfo=UTC)
DEADLINES = ("chậm nhất ngày 30/8/2024", "hằng tháng", "hằng quý", "thường xuyên")


def new_task(deadline: str) -> Task:
    return Task.assign(
        directive_id=uuid4(), directive_number="87/KH-UBND", ordinal="1", section=None,
        content="Xây dựng kế hoạch", deliverable=None, lead="QNG-SNV",
        coordinating=["QNG-STP"], lead_text=None, coordinating_text=None,
        deadline=parse_deadline(deadline, DeadlineContext(START.date(), None)),
        assigned_on=START.date(), assigning_office="QNG-VPUBND", meta=META, timestamp=START)


def occurrence_of(task: Task) -> str | None:
    """The occurrence a step acts on: the task's first listed one, if it has any."""
    listed = [occ.key for occ, _ in task.obligations(date(2024, 6, 1)) if occ is not None]
    return listed[0] if listed else None


def step(task: Task, kind: str, n: int) -> bool:
    """One command's change to ``task``; False if the task refused it (nothing changed)."""
    at = START + timedelta(days=3 * n + 1)
    occ, day = occurrence_of(task), at.date()
    stamp = {"meta": META, "timestamp": at}
    try:
        if kind == "progress":
            task.report_progress(occurrence=occ, reported_on=day, percent=n % 100,
                                 summary=f"Báo cáo {n}", reporter="QNG-SNV", obstacles=None,
                                 **stamp)
        elif kind == "extension":
            task.request_extension(occurrence=occ, requested_due=day + timedelta(days=60),
                                   reason="Chờ ý kiến", rulebook=RULEBOOK, **stamp)
        elif kind == "grant":
            task.grant_extension(occurrence=occ, new_due=None, note=None, **stamp)
        elif kind == "reject":
            task.reject_extension(occurrence=occ, reason="Không đủ căn cứ", **stamp)
        elif kind == "complete":
            task.report_completion(occurrence=occ, completed_on=day, document="01/BC",
                                   summary="Đã xong", **stamp)
        elif kind == "confirm":
            task.confirm_completion(occurrence=occ, note=None, **stamp)
        elif kind == "cancel":
            task.cancel(effective_on=day, reason="Không còn phù hợp", **stamp)
    except DomainError:
        return False
    return True


def state(value: Any) -> Any:
    """A plain, comparable picture of ``value`` (aggregates and dataclasses field by field)."""
    if isinstance(value, Task | Agency):
        return (type(value).__name__, {k: state(v) for k, v in vars(value).items()})
    if is_dataclass(value) and not isinstance(value, type):
        return (type(value).__name__,
                tuple(state(getattr(value, f.name)) for f in fields(value)))
    if isinstance(value, dict):
        return {k: state(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [state(v) for v in value]
    return value


def shared_mutables(a: Any, b: Any, path: str = "") -> list[str]:
    """Where the two pictures share one mutable object (a list, dict or mutable dataclass)."""
    found = []
    mutable = isinstance(a, list | dict) or (
        is_dataclass(a) and not isinstance(a, type)
        and not type(a).__dataclass_params__.frozen)  # type: ignore[attr-defined]
    if mutable and a is b and not _entry_of_progress(path):
        found.append(path)
    if isinstance(a, Task | Agency):
        for k in vars(a):
            found += shared_mutables(vars(a)[k], vars(b)[k], f"{path}.{k}")
    elif isinstance(a, dict):
        for k in a:
            found += shared_mutables(a[k], b[k], f"{path}[{k!r}]")
    elif isinstance(a, list):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found += shared_mutables(x, y, f"{path}[{i}]")
    elif is_dataclass(a) and not isinstance(a, type):
        for f in fields(a):
            found += shared_mutables(getattr(a, f.name), getattr(b, f.name), f"{path}.{f.name}")
    return found


def _entry_of_progress(path: str) -> bool:
    """A progress report once recorded is never changed: copies share them (ProgressLog)."""
    return path.startswith(".progress[")


steps = st.lists(st.sampled_from(("progress", "extension", "grant", "reject", "complete",
                                  "confirm", "cancel")), max_size=12)


@settings(max_examples=150, deadline=None)
@given(deadline=st.sampled_from(DEADLINES), before=steps, after=steps)
def test_a_copy_has_the_same_state_and_a_command_on_it_leaves_the_original_alone(
        deadline: str, before: list[str], after: list[str]) -> None:
    task = new_task(deadline)
    for n, kind in enumerate(before):
        step(task, kind, n)
    task.collect_events()  # as the repository caches it: saved
    picture = state(task)
    copy = deepcopy(task)
    assert type(copy) is Task and copy is not task
    assert state(copy) == picture
    assert shared_mutables(task, copy) == []
    accepted = sum(step(copy, kind, n) for n, kind in enumerate(after, start=len(before)))
    assert copy.version == task.version + accepted
    assert state(task) == picture


def test_the_copy_of_an_agency_is_its_own() -> None:
    agency = Agency.register(
        code="QNG-SNV", name="Sở Nội vụ", level=AgencyLevel.PROVINCIAL, parent=None,
        aliases=["SNV"], established_on=date(2008, 1, 1), member_levels=[], meta=META,
        timestamp=START)
    agency.collect_events()
    copy = deepcopy(agency)
    assert state(copy) == state(agency)
    assert shared_mutables(agency, copy) == []
    copy.aliases.append("Nội vụ")
    assert agency.aliases == ["SNV"]
