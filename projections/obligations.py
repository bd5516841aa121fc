"""Obligations read model: what each agency owes, as lead or coordinator, and per directive.

Tables (each row versioned, see ``projections.tables``):

* ``obl_directive``   one row per directive (number, issuer, dates, its task ordinals)
* ``obl_task``        one row per task: content, lead, coordinating agencies, the deadline as
                      written and normalised, assignment, cancellation
* ``obl_progress``    one row per task reported on: how many progress reports, the last one
                      (apart from the task's row: reports are the most frequent events, and
                      each gave the whole task row, its content included, a new version)
* ``obl_task_agency`` (agency, task) → role ``lead`` | ``coordinating``: the lookup by agency,
                      with the task's columns that judging and ordering its obligations need
                      (number, ordinal, deadline, assignment, cancellation), so a query reads
                      an agency's tasks from its links alone (see ``LINK_JUDGING``), and the
                      day the task settled, so it skips those that owe nothing any more
* ``obl_occurrence``  one row per occurrence something has happened to: original, working and
                      accountable due dates, extensions, completion
* ``obl_agency``      one row per agency: name, level, status, successor, group members, heads

Statuses are not stored: they depend on the day they are judged on, so the query judges the
stored facts with ``domain.rules`` for the day asked about. (The one exception: the status a
task's one obligation keeps for good from some day on, which its links carry.) Occurrences
nothing has happened to (e.g. next year's report of a "Hằng năm" task) are not stored either;
the query derives them from the deadline (``domain.obligations``).
"""

from __future__ import annotations

from typing import Any

from domain.agency import AgencyStatus
from domain.obligations import final_status, judged_occurrence, judged_on_once, settled_on
from domain.task import Task
from projections.base import (
    EntityState,
    Projection,
    deadline_columns,
    dumps_plain,
    iso,
    occurrence_changed,
)
from projections.tables import VERSION_COLUMNS, Rows, TableSpec, dumps

# The task's columns each of its links repeats. An agency's obligations are judged on these
# for thousands of tasks per query: read from the links, which the agency's key finds
# together, they cost no probe of the task table per task (an agency of the 1M ledger:
# ~9,000 probes, a third of the query). Progress reports, the most frequent events, change
# none of them, so they give the links no new version.
LINK_JUDGING = ("directive_number", "ordinal", "deadline", "assigned_on", "cancelled_on",
                "inline", *(f"once_{c}" for c in ("original_due", "due_on", "lateness_due",
                                                  "completed_on")))
# ``inline`` = 1 (``domain.obligations.judged_on_once``): the link also carries all that
# judging reads of the task's stored occurrences (``once_*``: the ``OCCURRENCE_JUDGING`` of
# ``domain.obligations.judged_occurrence``, the one occurrence stored or, until one is, the
# fresh one its deadline gives; nothing without a due date), so the query reads occurrences
# only for the other tasks (recurring ones). An extension or a completion then gives the
# links a new version; the first progress report, which stores the occurrence, does not.
# Each link also carries the day its task settled (``domain.obligations.settled_on``: from
# that day on it owes nothing open), which a confirmed completion sets once: "what is owed
# on D" leaves the tasks settled by D out before reading their occurrences and judging
# them. Most of an agency's tasks are (of the 1M ledger's links, about half). And the day
# from which the task's one obligation keeps one status (``final_on``, ``final_status``:
# ``domain.obligations.final_status``), so that the counts of every agency on D tally the
# lead links final by D in the database and judge only the others.
# What judging reads of each stored occurrence of an agency's tasks, besides the task and the
# occurrence's key; the occurrences' covering index carries them (with the version columns),
# so those reads never visit the table.
OCCURRENCE_JUDGING = ("original_due", "due_on", "lateness_due", "completed_on")


_JUDGED = len(OCCURRENCE_JUDGING)  # an occurrence row's first columns


class ObligationsProjection(Projection):
    name = "obligations"
    title = "Nghĩa vụ theo cơ quan / obligations"
    version = 9
    tables = (
        TableSpec("obl_directive", key=("directive_id",),
                  columns=("number", "doc_type", "issuer", "assigning_office", "issued_on",
                           "title", "revoked_on", "task_ordinals"),
                  indexes=(("number",),)),
        TableSpec("obl_task", key=("task_id",),
                  columns=("directive_id", "directive_number", "ordinal", "section", "content",
                           "deliverable", "lead", "coordinating", "lead_text", "deadline",
                           "deadline_kind", "deadline_text", "due_on", "assigned_on",
                           "cancelled_on", "cancel_reason", "assigning_office"),
                  indexes=(("directive_id",),)),
        TableSpec("obl_progress", key=("task_id",), columns=("reports", "last_progress"),
                  int_columns=frozenset({"reports"})),
        # An agency's links are read together (its obligations): stored together. An
        # agency's open ones as of a moment are found in an index of their own.
        TableSpec("obl_task_agency", key=("agency", "task_id"),
                  columns=("role", *LINK_JUDGING, "settled_on", "final_on", "final_status"),
                  int_columns=frozenset({"inline"}), clustered=True,
                  as_of_index=(("agency",), ("settled_on",))),
        TableSpec("obl_occurrence", key=("task_id", "occurrence"),
                  columns=("original_due", "due_on", "lateness_due", "completed_on",
                           "confirmed_at", "pending_completion_on",
                           "pending_completion_document", "extensions_requested",
                           "extensions_granted", "extensions_rejected", "pending_extension_due",
                           "rejected_completions"),
                  int_columns=frozenset({"extensions_requested", "extensions_granted",
                                         "extensions_rejected", "rejected_completions"}),
                  covering=(("task_id",),
                            ("occurrence", *VERSION_COLUMNS, *OCCURRENCE_JUDGING))),
        TableSpec("obl_agency", key=("code",),
                  columns=("name", "level", "status", "parent", "successor", "ended_on",
                           "member_levels", "heads")),
    )

    def render(self, state: EntityState) -> Rows:
        aggregate = state.aggregate
        kind = type(aggregate).__name__
        if kind == "Task":
            return _task_rows(aggregate)
        if kind == "Agency":
            return _agency_rows(aggregate)
        return _directive_rows(aggregate)

    def render_change(self, state: EntityState, event: Any, before: Rows) -> Rows:
        """An event on one occurrence of a task changes that occurrence's row and maybe the
        links (which carry a one-off task's occurrence and the day the task settled:
        ``LINK_JUDGING``), nothing else; a progress report changes the task's progress row
        and, only when it is the first event on the occurrence, stores that occurrence.
        Only the rows that changed get a new version."""
        key = occurrence_changed(event)
        if key is None or not before:
            return self.render(state)
        task = state.aggregate
        (tid,) = next(iter(before["obl_task"]))  # str(task.id), without formatting it again
        after = dict(before)
        stored = before["obl_occurrence"].get((tid, key))
        if isinstance(event, Task.ProgressReported):
            after["obl_progress"] = _progress_rows(task, tid)
            if stored is not None:  # the first report stores it; the others change nothing
                return after        # stored of it
        occ = task.occurrences.get(key)
        row = None if occ is None else _occurrence_row(occ)
        if row is not None:
            after["obl_occurrence"] = {**before["obl_occurrence"], (tid, key): row}
        # The links read, of the occurrences, which are stored and what judging reads of
        # them (``OCCURRENCE_JUDGING``, the row's first columns); an event on one occurrence
        # changes nothing else they read. Most such events (a completion reported, an
        # extension asked for or refused) leave both as they were.
        if stored is None or row is None or stored[:_JUDGED] != row[:_JUDGED]:
            after["obl_task_agency"] = _link_rows(task, tid)
        return after


if ObligationsProjection().spec("obl_occurrence").columns[:_JUDGED] != OCCURRENCE_JUDGING:
    raise ImportError("obl_occurrence's first columns must be OCCURRENCE_JUDGING "
                      "(render_change compares them)")


def _task_rows(task: Any) -> Rows:
    tid = str(task.id)
    occurrences = {(tid, key): _occurrence_row(occ) for key, occ in task.occurrences.items()}
    return {"obl_task": {(tid,): _task_row(task)}, "obl_task_agency": _link_rows(task, tid),
            "obl_occurrence": occurrences, "obl_progress": _progress_rows(task, tid)}


def _progress_rows(task: Any, tid: str) -> dict[tuple[str], tuple[Any, ...]]:
    if not task.progress:
        return {}
    return {(tid,): (len(task.progress), dumps_plain(task.progress[-1]))}


def _link_rows(task: Any, tid: str) -> dict[tuple[str, str], tuple[Any, ...]]:
    inline = judged_on_once(task.deadline, task.occurrences)
    once = judged_occurrence(task.deadline, task.occurrences) if inline else None
    judging = (task.directive_number, task.ordinal, deadline_columns(task.deadline)[0],
               iso(task.assigned_on), iso(task.cancelled_on), int(inline),
               *((iso(once.original_due), iso(once.due_on), iso(once.lateness_due),
                  iso(once.completed_on)) if inline and once is not None
                 else (None, None, None, None)))  # LINK_JUDGING
    settled = (_settled_on(task), *_final(task))
    agencies = {(task.lead, tid): ("lead", *judging, *settled)}
    for code in task.coordinating:
        agencies[(code, tid)] = ("coordinating", *judging, *settled)
    return agencies


def _settled_on(task: Any) -> str | None:
    return iso(settled_on(task.deadline, cancelled_on=task.cancelled_on,
                          occurrences=task.occurrences))


def _final(task: Any) -> tuple[str | None, str | None]:
    """(``final_on``, ``final_status``) of the links: ``domain.obligations.final_status``."""
    final = final_status(task.deadline, assigned_on=task.assigned_on,
                         cancelled_on=task.cancelled_on, occurrences=task.occurrences)
    return (None, None) if final is None else (final[0].isoformat(), final[1].value)


def _task_row(task: Any) -> tuple[Any, ...]:
    return (
        str(task.directive_id), task.directive_number, task.ordinal, task.section, task.content,
        task.deliverable, task.lead, dumps(task.coordinating), task.lead_text,
        *deadline_columns(task.deadline),
        iso(task.assigned_on), iso(task.cancelled_on), task.cancel_reason,
        task.assigning_office,
    )


def _occurrence_row(occ: Any) -> tuple[Any, ...]:
    pending = occ.pending_extension
    return (
        iso(occ.original_due), iso(occ.due_on), iso(occ.lateness_due), iso(occ.completed_on),
        occ.confirmed_at.isoformat() if occ.confirmed_at else None,
        iso(occ.pending_completion_on), occ.pending_completion_document,
        len(occ.extensions), sum(e.granted_due is not None for e in occ.extensions),
        sum(e.rejected for e in occ.extensions),
        iso(pending.requested_due) if pending else None,
        occ.rejected_completions,
    )  # not the occurrence's count of progress reports: answers show the task's (obl_progress)


def _agency_rows(agency: Any) -> Rows:
    return {"obl_agency": {(agency.code,): (
        agency.name, agency.level.value, agency.status.value, agency.parent, agency.successor,
        iso(agency.ended_on) if agency.status is not AgencyStatus.ACTIVE else None,
        dumps([m.value for m in agency.member_levels]), dumps_plain(agency.heads),
    )}}


def _directive_rows(directive: Any) -> Rows:
    return {"obl_directive": {(str(directive.id),): (
        directive.number, directive.doc_type, directive.issuer, directive.assigning_office,
        iso(directive.issued_on), directive.title, iso(directive.revoked_on),
        dumps(directive.task_ordinals),
    )}}
