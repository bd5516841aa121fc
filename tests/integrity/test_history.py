"""Replay and diff: the ledger as of a recorded moment, the history step by step (each step's
before/after equals folding the aggregate to versions v-1 and v), what changed between two
moments."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from domain.clock import parse_moment
from domain.errors import UnreadableEvent
from domain.ids import task_id
from domain.integrity.history import diff, entity_state, state_as_of, walk_history
from tests.behaviour.helpers import OFFICE, OPERATOR, agency, import_plan
from tests.integrity.helpers import Attacker


def statuses(state, label):
    task = next(t for t in state.tasks if t["label"] == label)
    return {o["occurrence"]: o["status"] for o in task["obligations"]}


def test_the_ledger_as_of_a_moment(ledger, clock):
    import_plan(ledger)
    plan = ledger.find_directive("768/QĐ-UBND")
    t13 = task_id(plan.id, "1.3")  # Quý II năm 2022, lead QNG-SNV
    clock.set("2022-03-01 08:00")
    ledger.appoint_head(OPERATOR, "QNG-SNV", "Nguyễn Văn An", "Giám đốc Sở", date(2022, 3, 1))
    clock.set("2022-06-20 08:00")
    ledger.report_completion(agency("QNG-SNV"), t13, completed_on=date(2022, 6, 20),
                             summary="Đã ban hành Đề án")
    ledger.confirm_completion(OFFICE, t13)

    before = state_as_of(ledger, parse_moment("28/02/2022"))
    assert before.position == 95 and len(before.tasks) == 45 and len(before.directives) == 1
    assert statuses(before, "768/QĐ-UBND#1.3") == {"once": "in_progress"}
    snv = next(a for a in before.agencies if a["code"] == "QNG-SNV")
    assert snv["head"] is None

    during = state_as_of(ledger, parse_moment("2022-03-01T09:00"))
    assert during.position == 96
    snv = next(a for a in during.agencies if a["code"] == "QNG-SNV")
    assert snv["head"]["person"] == "Nguyễn Văn An"

    later = state_as_of(ledger, parse_moment("31/12/2022"))
    assert later.position == 98
    assert statuses(later, "768/QĐ-UBND#1.3") == {"once": "done_on_time"}
    # "As of 31/12/2021" is 24:00 of that day: a task due in Quý IV năm 2021 is not yet late.
    q4 = next(t["label"] for t in before.tasks if t["deadline"] == "Quý IV năm 2021")
    assert state_as_of(ledger, parse_moment("31/12/2021")).on == date(2021, 12, 31)
    assert statuses(state_as_of(ledger, parse_moment("31/12/2021")), q4) == \
        {"once": "in_progress"}
    assert statuses(state_as_of(ledger, parse_moment("1/1/2022")), q4) == {"once": "overdue"}
    # A minute before the completion was recorded, the ledger held it open, not yet due.
    assert statuses(state_as_of(ledger, parse_moment("2022-06-20T07:59")),
                    "768/QĐ-UBND#1.3") == {"once": "in_progress"}


def test_each_step_is_the_fold_of_its_entity_to_versions_before_and_after(ledger, clock):
    import_plan(ledger)
    plan = ledger.find_directive("768/QĐ-UBND")
    t13 = task_id(plan.id, "1.3")
    clock.set("2022-01-10 08:00")
    ledger.report_progress(agency("QNG-SNV"), t13, summary="Đang xây dựng", percent=30)
    ledger.request_extension(agency("QNG-SNV"), t13, requested_due=date(2022, 9, 30),
                             reason="Chờ hướng dẫn")
    ledger.grant_extension(OFFICE, t13)
    steps = list(walk_history(ledger, None))
    assert [s.position for s in steps] == list(range(1, 99))
    for step in steps[90:]:
        after = ledger.repository.get(step.entity_id, version=step.version)
        assert step.after == entity_state(after)
        if step.version > 1:
            before = ledger.repository.get(step.entity_id, version=step.version - 1)
            assert step.before == entity_state(before)
        else:
            assert step.before is None
    granted = steps[-1]
    assert granted.event_type == "Task.ExtensionGranted" and granted.label == "768/QĐ-UBND#1.3"
    assert "occurrences" in [field for field, _, _ in granted.changed]
    only = list(walk_history(ledger, None, since=parse_moment("2022-01-01"), entity=t13))
    assert [s.event_type for s in only] == ["Task.ProgressReported", "Task.ExtensionRequested",
                                           "Task.ExtensionGranted"]


def test_ledger_time_is_the_running_maximum_of_recorded_times(ledger, clock):
    """A process with a clock behind the others: its event, stored after a later one, is
    only part of the ledger once the later moment has passed."""
    import_plan(ledger)
    clock.set("2022-01-10 08:00")
    ledger.appoint_head(OPERATOR, "QNG-SNV", "A", "Giám đốc Sở", date(2022, 1, 1))
    clock.now -= timedelta(hours=1)  # a slower clock writes next
    ledger.appoint_head(OPERATOR, "QNG-STP", "B", "Giám đốc Sở", date(2022, 1, 1))
    assert state_as_of(ledger, parse_moment("2022-01-10T07:30")).position == 95
    assert state_as_of(ledger, parse_moment("2022-01-10T08:00")).position == 97


def test_diff_between_two_moments(ledger, clock):
    import_plan(ledger)
    plan = ledger.find_directive("768/QĐ-UBND")
    clock.set("2022-01-10 08:00")
    ledger.report_progress(agency("QNG-SNV"), task_id(plan.id, "1.3"), summary="Đang làm")
    result = diff(ledger, parse_moment("31/12/2021"), parse_moment("31/07/2022"))
    assert dict(result.events) == {"Task.ProgressReported": 1}
    assert [(c.label, c.created) for c in result.entities] == [("768/QĐ-UBND#1.3", False)]
    assert [f for f, _, _ in result.entities[0].fields] == ["occurrences", "progress"]
    # Time passing changes statuses without any event: Quý II năm 2022 is now overdue.
    moved = {(s["task"], s["occurrence"]): (s["before"], s["after"]) for s in result.statuses}
    assert moved[("768/QĐ-UBND#1.3", "once")] == ("in_progress", "overdue")
    empty = diff(ledger, parse_moment("2000-01-01"), parse_moment("2000-01-02"))
    assert not empty.events and not empty.entities and empty.to_position == 0


def test_as_of_a_moment_before_a_damaged_row_is_still_answered(ledger, clock, store_url):
    """The replay stops at a row that no longer reads only when it needs it: the ledger as
    of an earlier moment is answered, a later one names the row."""
    import_plan(ledger)
    clock.set("2022-03-01 08:00")
    ledger.appoint_head(OPERATOR, "QNG-SNV", "Nguyễn Văn An", "Giám đốc Sở", date(2022, 3, 1))
    clock.set("2022-06-01 08:00")  # the replay reads this one to know 31/05 has passed
    ledger.appoint_head(OPERATOR, "QNG-STC", "Trần Thị Bình", "Giám đốc Sở", date(2022, 6, 1))
    clock.set("2022-06-20 08:00")
    damaged = ledger.appoint_head(OPERATOR, "QNG-STP", "Lê Văn Cường", "Giám đốc Sở",
                                  date(2022, 6, 20)).position
    attacker = Attacker(store_url)
    try:
        attacker.rewrite(damaged, lambda state: state[:30])
    finally:
        attacker.close()
    ledger = type(ledger)(store_url)  # nothing cached from the writing
    try:
        before = state_as_of(ledger, parse_moment("31/05/2022"))
        assert before.position == damaged - 2
        snv = next(a for a in before.agencies if a["code"] == "QNG-SNV")
        assert snv["head"]["person"] == "Nguyễn Văn An"
        assert len(list(walk_history(ledger, parse_moment("31/05/2022")))) == damaged - 2
        with pytest.raises(UnreadableEvent, match=f"at position {damaged} "):
            state_as_of(ledger, parse_moment("31/12/2022"))
    finally:
        ledger.close()
