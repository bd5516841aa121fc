"""Which obligations a task has on a day, and their status (DESIGN §3-§4), as a pure function.

A task falls due once, or once per period (recurring). Occurrences that nothing has happened
to yet exist only implicitly, from the deadline: this function lists those that exist on a day
(plus the next one ahead, so an open obligation is always visible) together with the ones the
ledger holds state for. The Task aggregate and the obligations read model both use it, so the
rule lives in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from domain.deadlines import ONCE, Deadline, DeadlineKind
from domain.rules import (
    OPEN_STATUSES,
    OccurrenceState,
    TaskStatus,
    occurrence_status,
    undated_status,
)

#: The statuses with which an obligation whose lead agency was merged into another by the day
#: is the successor's (DESIGN §1): a reorganisation moves the open obligations and never
#: rewrites who was accountable before it, so one done or cancelled stays with the old lead.
MOVING_TO_SUCCESSOR: frozenset[TaskStatus] = OPEN_STATUSES


def fresh_occurrence(deadline: Deadline, key: str) -> OccurrenceState:
    """An occurrence nothing has happened to: due as the deadline says."""
    due = deadline.occurrence_due(key)
    return OccurrenceState(key=key, original_due=due, due_on=due, lateness_due=due)


def judged_on_once(deadline: Deadline, occurrences: Mapping[str, OccurrenceState]) -> bool:
    """Whether ``obligations_on`` reads, of the task's stored occurrences, at most the one
    keyed ``ONCE``: a task that is not recurring and holds no other. Most tasks are, so a
    read model can keep that one occurrence beside the task and judge it from there."""
    return deadline.kind is not DeadlineKind.RECURRING and all(k == ONCE for k in occurrences)


def judged_occurrence(deadline: Deadline, occurrences: Mapping[str, OccurrenceState]
                      ) -> OccurrenceState | None:
    """For a task that ``judged_on_once`` holds for, the occurrence judging it reads: the
    stored one, or before anything has happened to it the fresh one its deadline gives
    (None without a due date). A read model keeping it beside the task from the assignment
    on has nothing new to keep when the first event on it (most often a progress report)
    stores it."""
    if not judged_on_once(deadline, occurrences):
        raise ValueError(f"deadline {deadline.text!r} is judged on all its occurrences")
    return _stored_or_fresh(deadline, occurrences.get(ONCE))


def _stored_or_fresh(deadline: Deadline, stored: OccurrenceState | None
                     ) -> OccurrenceState | None:
    """A one-off task's occurrence: the one stored, else the fresh one its deadline gives
    (None without a due date)."""
    if stored is None and deadline.has_due_date:
        return fresh_occurrence(deadline, ONCE)
    return stored


def obligations_on(
    deadline: Deadline,
    *,
    assigned_on: date,
    cancelled_on: date | None,
    occurrences: Mapping[str, OccurrenceState],
    on: date,
) -> list[tuple[OccurrenceState | None, TaskStatus]]:
    """Each occurrence that exists on ``on`` (plus the next one ahead) with its status; a task
    without a due date (standing, or conditional still waiting for its trigger) yields one
    row without an occurrence."""
    if (deadline.kind is DeadlineKind.STANDING or deadline.is_dormant
            or judged_on_once(deadline, occurrences)):
        # Most tasks fall due once: the listing below would give this one row, at a cost
        # that a read model judging thousands of tasks per query feels.
        return _obligation_on_once(deadline, assigned_on=assigned_on,
                                   cancelled_on=cancelled_on, occurrence=occurrences.get(ONCE),
                                   on=on)
    return listed_obligations(deadline, assigned_on=assigned_on, cancelled_on=cancelled_on,
                              occurrences=occurrences, on=on)


def _obligation_on_once(deadline: Deadline, *, assigned_on: date, cancelled_on: date | None,
                        occurrence: OccurrenceState | None, on: date
                        ) -> list[tuple[OccurrenceState | None, TaskStatus]]:
    """``obligations_on`` of a task without a due date, or of one that ``judged_on_once``
    holds for, given its one stored occurrence (None: nothing has happened to it yet)."""
    if deadline.kind is DeadlineKind.STANDING or deadline.is_dormant:
        status = undated_status(
            dormant=deadline.is_dormant, on=on, assigned_on=assigned_on,
            cancelled_on=cancelled_on, completed_on=None,
        )
        return [(None, status)]
    occ = _stored_or_fresh(deadline, occurrence)
    assert occ is not None  # neither standing nor dormant: it has a due date
    return [(occ, occurrence_status(occ, on, assigned_on=assigned_on,
                                    cancelled_on=cancelled_on))]


def owed_on(deadline: Deadline, *, assigned_on: date, on: date, **facts: Any
            ) -> list[tuple[OccurrenceState | None, TaskStatus]]:
    """What an agency owes for the task on ``on``, as the obligations read model lists it:
    nothing before the day the task was assigned (the task did not exist for anyone yet, so
    an as-of question about an earlier day must not show it), ``obligations_on`` from then on
    (``facts``: its other arguments). The aggregate's own ``obligations`` keeps answering
    ``not_due`` for those days."""
    if on < assigned_on:
        return []
    return obligations_on(deadline, assigned_on=assigned_on, on=on, **facts)


def owed_once_on(deadline: Deadline, *, assigned_on: date, cancelled_on: date | None,
                 occurrence: OccurrenceState | None, on: date
                 ) -> list[tuple[OccurrenceState | None, TaskStatus]]:
    """``owed_on`` of a task that ``judged_on_once`` holds for (or one without a due date),
    given its one stored occurrence instead of all of them: a read model that keeps that
    occurrence beside the task judges thousands of such tasks per query without building a
    mapping for each."""
    if on < assigned_on:
        return []
    return _obligation_on_once(deadline, assigned_on=assigned_on, cancelled_on=cancelled_on,
                               occurrence=occurrence, on=on)


def settled_on(
    deadline: Deadline,
    *,
    cancelled_on: date | None,
    occurrences: Mapping[str, OccurrenceState],
) -> date | None:
    """The first day from which the task owes nothing open: on that day and on every later
    one, ``obligations_on`` lists only done or cancelled obligations (whatever the day it
    was assigned). None while no such day is known: a standing, dormant or recurring task
    keeps owing until it is cancelled (a recurring one falls due again every period).

    A read model stores it beside the task, so that "what is owed on day D" can leave out
    the tasks settled by D before judging them: most of an agency's tasks are."""
    settled = cancelled_on
    if deadline.kind is DeadlineKind.STANDING or deadline.is_dormant:
        return settled
    if not judged_on_once(deadline, occurrences):
        return settled  # recurring, or listed the general way: left to judging
    occ = occurrences.get(ONCE)
    if occ is not None and occ.completed_on is not None:
        settled = occ.completed_on if settled is None else min(settled, occ.completed_on)
    return settled


def final_status(
    deadline: Deadline,
    *,
    assigned_on: date,
    cancelled_on: date | None,
    occurrences: Mapping[str, OccurrenceState],
) -> tuple[date, TaskStatus] | None:
    """The day from which the task's obligations stop changing, with the status they keep:
    on that day and on every later one, ``owed_on`` lists exactly one obligation, with that
    status. None while no such day is known: an open task, or a recurring one (it falls due
    again every period, even cancelled).

    A read model stores it beside the task, so that counting every agency's obligations on
    a day tallies the tasks final by then in the database instead of judging each: most
    tasks of a ledger a few years old are."""
    once = (deadline.kind is DeadlineKind.STANDING or deadline.is_dormant
            or judged_on_once(deadline, occurrences))
    if not once:
        return None
    occurrence = occurrences.get(ONCE)
    if cancelled_on is not None:  # cancelled from then on, whatever was done before
        day = cancelled_on
    elif (occurrence is not None and occurrence.completed_on is not None
          and deadline.kind is not DeadlineKind.STANDING and not deadline.is_dormant):
        day = occurrence.completed_on
    else:
        return None
    day = max(day, assigned_on)  # nothing is owed before the task was assigned
    ((_, status),) = _obligation_on_once(deadline, assigned_on=assigned_on,
                                          cancelled_on=cancelled_on, occurrence=occurrence,
                                          on=day)
    return day, status


def listed_obligations(
    deadline: Deadline,
    *,
    assigned_on: date,
    cancelled_on: date | None,
    occurrences: Mapping[str, OccurrenceState],
    on: date,
) -> list[tuple[OccurrenceState | None, TaskStatus]]:
    """``obligations_on`` for a dated deadline, the general way: the occurrences that exist
    on ``on`` by the deadline, plus those the ledger holds state for, by due date."""
    listed = {o.key: o for o in deadline.occurrences(assigned_on, on)}
    states = [occurrences.get(key) or OccurrenceState(
        key=key, original_due=o.due_on, due_on=o.due_on, lateness_due=o.due_on)  # fresh
        for key, o in listed.items()]
    states += [occ for key, occ in occurrences.items() if key not in listed]
    states.sort(key=lambda occ: (occ.original_due, occ.key))
    return [(occ, occurrence_status(occ, on, assigned_on=assigned_on, cancelled_on=cancelled_on))
            for occ in states]
