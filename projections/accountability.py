"""Accountability read model: the facts ``domain.accountability`` judges, with their evidence.

Tables (each row versioned, see ``projections.tables``):

* ``acc_agency``     agency: name, group or not, successor and merger date (with the position
                     of the merger event)
* ``acc_head``       one row per tenure (agency, person, from, acting): to, and the positions of
                     the HeadAppointed / HeadLeft events
* ``acc_task``       task: deadline, assignment, cancellation, the lead over time (assignment and
                     each reassignment by effective date, with positions)
* ``acc_occurrence`` occurrence something has happened to: original and accountable due date,
                     completion date, the positions proving the due date and the completion
* ``acc_act``        each extension request (with its timeliness and outcome) and each rejected
                     completion, on the Vietnam day it was recorded

Who answers for what, in which period, is decided at query time by the pure rules in
``domain.accountability``, for the rulebook version the record names.
"""

from __future__ import annotations

from typing import Any

from domain.agency import Agency, AgencyStatus
from domain.clock import local_date
from domain.task import Task
from projections.base import (
    EntityState,
    Projection,
    deadline_columns,
    iso,
    occurrence_changed,
)
from projections.tables import Rows, TableSpec, dumps


class AccountabilityProjection(Projection):
    name = "accountability"
    title = "Trách nhiệm người đứng đầu / accountability"
    version = 1
    entity_types = frozenset({"Task", "Agency"})
    tables = (
        TableSpec("acc_agency", key=("code",),
                  columns=("name", "level", "is_group", "successor", "merged_on", "merged_at"),
                  int_columns=frozenset({"is_group", "merged_at"})),
        TableSpec("acc_head", key=("agency", "person", "from_on", "acting"),
                  columns=("position", "to_on", "appointed_at", "left_at"),
                  int_columns=frozenset({"acting", "appointed_at", "left_at"})),
        TableSpec("acc_task", key=("task_id",),
                  columns=("directive_number", "ordinal", "content", "deadline",
                           "deadline_kind", "due_on", "assigned_on", "cancelled_on", "leads",
                           "assigned_at", "triggered_at", "cancelled_at"),
                  int_columns=frozenset({"assigned_at", "triggered_at", "cancelled_at"}),
                  indexes=(("deadline_kind",), ("due_on",))),
        TableSpec("acc_occurrence", key=("task_id", "occurrence"),
                  columns=("original_due", "lateness_due", "completed_on", "due_evidence",
                           "completion_evidence"),
                  indexes=(("lateness_due",), ("completed_on",), ("original_due",))),
        TableSpec("acc_act", key=("task_id", "occurrence", "position"),
                  columns=("kind", "day", "timely", "outcome", "decided_at", "requested_due",
                           "evidence"),
                  int_columns=frozenset({"position", "timely", "decided_at"}),
                  indexes=(("day",),)),
    )

    # -- what is tracked beside the aggregates -----------------------------------------------

    def new_extra(self, event: Any, position: int) -> dict[str, Any]:
        if isinstance(event, Task.Assigned):
            return {"assigned_at": position, "triggered_at": None, "cancelled_at": None,
                    "leads": [[event.lead, event.assigned_on.isoformat(), position]],
                    "due_evidence": {}, "completion_evidence": {}, "reported": {},
                    "acts": []}
        return {"merged_at": None, "tenures": {}}

    def track(self, state: EntityState, event: Any, position: int) -> None:
        if isinstance(state.aggregate, Task):
            _track_task(state.extra, event, position)
        elif isinstance(state.aggregate, Agency):
            _track_agency(state.aggregate, state.extra, event, position)

    def render(self, state: EntityState) -> Rows:
        if isinstance(state.aggregate, Task):
            return _task_rows(state.aggregate, state.extra)
        return _agency_rows(state.aggregate, state.extra)

    def render_change(self, state: EntityState, event: Any, before: Rows) -> Rows:
        """An event on one occurrence of a task changes that occurrence's row, and (an
        extension's request or decision, a rejected completion) the task's acts; the task's
        row never (``_track_task``)."""
        key = occurrence_changed(event)
        if key is None or not before:
            return self.render(state)
        task, extra = state.aggregate, state.extra
        (tid,) = next(iter(before["acc_task"]))  # str(task.id), without formatting it again
        after = dict(before)
        occ = task.occurrences.get(key)
        if occ is not None:
            after["acc_occurrence"] = {**before["acc_occurrence"],
                                       (tid, key): _occurrence_row(occ, key, extra)}
        if isinstance(event, _ACT_EVENTS):
            after["acc_act"] = _act_rows(tid, extra)
        return after


_ACT_EVENTS = (Task.ExtensionRequested, Task.ExtensionGranted, Task.ExtensionRejected,
               Task.CompletionRejected)  # the events that add or decide an act


def _pending_request(extra: dict[str, Any], occurrence: str) -> dict[str, Any]:
    for act in reversed(extra["acts"]):
        if (act["kind"] == "extension_requested" and act["occurrence"] == occurrence
                and act["outcome"] == "pending"):
            return act
    raise ValueError(f"no pending extension request on {occurrence}")


def _track_task(extra: dict[str, Any], event: Any, position: int) -> None:
    occurrence = getattr(event, "occurrence", None)
    if isinstance(event, Task.Reassigned):
        extra["leads"].append([event.lead, event.effective_on.isoformat(), position])
    elif isinstance(event, Task.DeadlineTriggered):
        extra["triggered_at"] = position
    elif isinstance(event, Task.ExtensionRequested):
        extra["acts"].append({
            "kind": "extension_requested", "occurrence": occurrence, "position": position,
            "day": local_date(event.timestamp).isoformat(), "timely": event.timely,
            "outcome": "pending", "decided_at": None,
            "requested_due": event.requested_due.isoformat(), "evidence": [position]})
    elif isinstance(event, Task.ExtensionGranted):
        act = _pending_request(extra, occurrence)
        act.update(outcome="granted", decided_at=position)
        act["evidence"].append(position)
        if event.cures_lateness:
            extra["due_evidence"].setdefault(occurrence, []).extend(act["evidence"])
    elif isinstance(event, Task.ExtensionRejected):
        act = _pending_request(extra, occurrence)
        act.update(outcome="rejected", decided_at=position)
        act["evidence"].append(position)
    elif isinstance(event, Task.CompletionReported):
        extra["reported"][occurrence] = position
    elif isinstance(event, Task.CompletionConfirmed):
        reported = extra["reported"].pop(occurrence, None)
        extra["completion_evidence"][occurrence] = [p for p in (reported, position) if p]
    elif isinstance(event, Task.CompletionRejected):
        reported = extra["reported"].pop(occurrence, None)
        extra["acts"].append({
            "kind": "completion_rejected", "occurrence": occurrence, "position": position,
            "day": local_date(event.timestamp).isoformat(), "timely": None, "outcome": None,
            "decided_at": None,
            "requested_due": None, "evidence": [p for p in (reported, position) if p]})
    elif isinstance(event, Task.Cancelled):
        extra["cancelled_at"] = position
    elif isinstance(event, Task.Reopened):
        if event.occurrence is None:
            extra["cancelled_at"] = None
        else:
            extra["completion_evidence"].pop(event.occurrence, None)


def _tenure_key(person: str, from_on: Any, acting: bool) -> str:
    return f"{person}\x1f{from_on.isoformat()}\x1f{int(acting)}"


def _track_agency(agency: Agency, extra: dict[str, Any], event: Any, position: int) -> None:
    if isinstance(event, Agency.Merged):
        extra["merged_at"] = position
    elif isinstance(event, Agency.HeadAppointed):
        extra["tenures"][_tenure_key(event.person, event.from_on, event.acting)] = [
            position, None]
    elif isinstance(event, Agency.HeadLeft):
        for tenure in agency.heads:
            key = _tenure_key(tenure.person, tenure.from_on, tenure.acting)
            marks = extra["tenures"].get(key)
            if (tenure.person == event.person and tenure.to_on == event.to_on and marks
                    and marks[1] is None):
                marks[1] = position
                return


def _task_rows(task: Task, extra: dict[str, Any]) -> Rows:
    tid = str(task.id)
    deadline_text, kind, _, due_on = deadline_columns(task.deadline)
    task_row = (
        task.directive_number, task.ordinal, task.content, deadline_text, kind, due_on,
        iso(task.assigned_on),
        iso(task.cancelled_on), dumps(extra["leads"]), extra["assigned_at"],
        extra["triggered_at"], extra["cancelled_at"] if task.cancelled_on else None,
    )
    occurrences = {(tid, key): _occurrence_row(occ, key, extra)
                   for key, occ in task.occurrences.items()}
    return {"acc_task": {(tid,): task_row}, "acc_occurrence": occurrences,
            "acc_act": _act_rows(tid, extra)}


def _occurrence_row(occ: Any, key: str, extra: dict[str, Any]) -> tuple[Any, ...]:
    return (
        iso(occ.original_due), iso(occ.lateness_due), iso(occ.completed_on),
        dumps(sorted(set(extra["due_evidence"].get(key, ())))),
        dumps(extra["completion_evidence"].get(key, []) if occ.completed_on else []),
    )


def _act_rows(tid: str, extra: dict[str, Any]) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    acts = {}
    for act in extra["acts"]:
        acts[(tid, act["occurrence"], act["position"])] = (
            act["kind"], act["day"], None if act["timely"] is None else int(act["timely"]),
            act["outcome"], act["decided_at"], act["requested_due"], dumps(act["evidence"]),
        )
    return acts


def _agency_rows(agency: Agency, extra: dict[str, Any]) -> Rows:
    merged = agency.status is AgencyStatus.MERGED
    heads = {}
    for tenure in agency.heads:
        marks = extra["tenures"].get(_tenure_key(tenure.person, tenure.from_on, tenure.acting),
                                     [None, None])
        heads[(agency.code, tenure.person, tenure.from_on.isoformat(), int(tenure.acting))] = (
            tenure.position, iso(tenure.to_on), marks[0], marks[1])
    return {
        "acc_agency": {(agency.code,): (
            agency.name, agency.level.value, int(agency.is_group),
            agency.successor if merged else None, iso(agency.ended_on) if merged else None,
            extra["merged_at"] if merged else None)},
        "acc_head": heads,
    }
