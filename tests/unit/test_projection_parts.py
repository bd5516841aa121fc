"""Pieces of the read models that need no database: state diffs, row versioning, occurrences."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from enum import Enum
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from domain.deadlines import DeadlineContext, DeadlineKind, parse_deadline
from domain.obligations import obligations_on
from domain.rules import Extension, OccurrenceState, TaskStatus
from projections.audit import apply_changes, changes, flatten, unflatten
from projections.base import dumps_plain, plain
from projections.tables import (
    PageWriter,
    TableSpec,
    dumps,
    ledger_time_text,
    micros_ledger_time,
    parse_ledger_time,
)

json_leaf = st.none() | st.booleans() | st.integers() | st.text(max_size=5)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(alphabet="ab/~#.-1", max_size=4), inner, max_size=3),
    max_leaves=12,
)
states = st.dictionaries(st.text(alphabet="abc_", min_size=1, max_size=4), json_value,
                         min_size=1, max_size=4)


@settings(max_examples=300, deadline=None)
@given(before=states, after=states)
def test_changes_replayed_on_the_state_before_give_the_state_after(before, after):
    flat_before, flat_after = flatten(before), flatten(after)
    assert unflatten(flat_before) == before
    delta = changes(flat_before, flat_after)
    assert unflatten(apply_changes(flat_before, delta)) == after
    assert (delta == []) == (before == after)


def test_a_change_names_the_path_and_both_values():
    delta = changes(flatten({"lead": "A", "occurrences": {}}),
                    flatten({"lead": "B", "occurrences": {"2022": {"due": "2022-12-31"}}}))
    assert {"path": "/lead", "before": "A", "after": "B"} in delta
    assert {"path": "/occurrences/2022/due", "after": "2022-12-31"} in delta
    assert {"path": "/occurrences", "before": {}} in delta


SPEC = TableSpec("t", key=("k",), columns=("v",))


def test_page_writer_closes_and_opens_row_versions():
    writer = PageWriter([SPEC])
    writer.diff({}, {"t": {("a",): (1,)}}, 10, "T10")  # created in this page
    writer.diff({"t": {("a",): (1,)}}, {"t": {("a",): (2,)}}, 11, "T11")  # changed again
    writer.diff({"t": {("b",): (7,)}}, {"t": {("b",): (7,)}}, 12, "T12")  # unchanged
    writer.diff({"t": {("c",): (3,)}}, {}, 13, "T13")  # an older row removed
    assert writer.inserts["t"] == [["a", 1, 10, 11, "T10", "T11"],
                                   ["a", 2, 11, None, "T11", None]]
    assert writer.closes["t"] == [(13, "T13", "c")]


def test_recurring_obligations_one_per_occurrence_standing_and_dormant_ones():
    context = DeadlineContext(date(2021, 8, 26), 2025)
    yearly = parse_deadline("Hằng năm", context)
    rows = obligations_on(yearly, assigned_on=date(2021, 8, 26), cancelled_on=None,
                          occurrences={}, on=date(2023, 6, 1))
    assert [(o.key, s) for o, s in rows] == [
        ("2021", TaskStatus.OVERDUE), ("2022", TaskStatus.OVERDUE),
        ("2023", TaskStatus.IN_PROGRESS)]
    done = OccurrenceState("2022", date(2022, 12, 31), date(2022, 12, 31), date(2022, 12, 31),
                           completed_on=date(2022, 12, 20))
    rows = obligations_on(yearly, assigned_on=date(2021, 8, 26), cancelled_on=None,
                          occurrences={"2022": done}, on=date(2023, 6, 1))
    assert rows[1] == (done, TaskStatus.DONE_ON_TIME)
    standing = parse_deadline("Thường xuyên", context)
    assert obligations_on(standing, assigned_on=date(2021, 8, 26), cancelled_on=None,
                          occurrences={}, on=date(2030, 1, 1)) == [(None, TaskStatus.NO_DEADLINE)]
    dormant = parse_deadline("Sau khi có hướng dẫn của Bộ", context)
    assert obligations_on(dormant, assigned_on=date(2021, 8, 26), cancelled_on=None,
                          occurrences={}, on=date(2030, 1, 1)) == [(None, TaskStatus.NOT_DUE)]


def test_an_agency_owes_nothing_for_a_task_before_the_day_it_was_assigned():
    from domain.obligations import owed_on

    deadline = parse_deadline("chậm nhất ngày 30/6/2022", DeadlineContext(date(2022, 3, 1), 2025))
    done = OccurrenceState("once", date(2022, 6, 30), date(2022, 6, 30), date(2022, 6, 30),
                           completed_on=date(2022, 2, 20))  # reported done before assignment
    kwargs = {"assigned_on": date(2022, 3, 1), "cancelled_on": date(2022, 2, 25),
              "occurrences": {"once": done}}
    assert owed_on(deadline, **kwargs, on=date(2022, 2, 28)) == []
    # The aggregate's view of the same day lists the task with a status.
    assert obligations_on(deadline, **kwargs, on=date(2022, 2, 28)) != []
    for day in (date(2022, 3, 1), date(2022, 7, 1)):
        assert owed_on(deadline, **kwargs, on=day) == obligations_on(deadline, **kwargs, on=day)
        assert owed_on(deadline, **kwargs, on=day) != []


days = st.dates(min_value=date(2021, 1, 1), max_value=date(2026, 12, 31))
dated_phrases = st.sampled_from(["chậm nhất ngày 30/6/2022", "Quý IV năm 2022", "Năm 2023",
                                 "trước ngày 15/3/2024", "Hằng năm", "Quý I năm kế hoạch"])


@settings(max_examples=300, deadline=None)
@given(phrase=dated_phrases, assigned_on=days, on=days, cancelled_on=st.none() | days,
       completed_on=st.none() | days, extra=st.integers(0, 40), known=st.booleans())
def test_the_shortcut_for_a_task_due_once_lists_what_the_general_listing_lists(
        phrase, assigned_on, on, cancelled_on, completed_on, extra, known):
    from domain.obligations import listed_obligations

    deadline = parse_deadline(phrase, DeadlineContext(assigned_on, assigned_on.year + 4))
    occurrences = {}
    if known and deadline.kind is not DeadlineKind.RECURRING:
        due = deadline.due_on
        occurrences["once"] = OccurrenceState("once", due, due + timedelta(days=extra),
                                              due + timedelta(days=extra // 2),
                                              completed_on=completed_on)
    kwargs = {"assigned_on": assigned_on, "cancelled_on": cancelled_on,
              "occurrences": occurrences, "on": on}
    assert obligations_on(deadline, **kwargs) == listed_obligations(deadline, **kwargs)


def test_the_one_pass_flattening_of_an_aggregate_equals_flattening_its_plain_state():
    from domain.rules import Extension
    from projections.audit import flat_state, state_of
    from tests.unit.test_rules import at, make_task

    task = make_task("Hằng năm", last_year=2025)
    occ = task.occurrence("2022")
    occ.extensions.append(Extension(date(2023, 1, 31), at("2022-12-28 10:00"), False))
    task.progress.append({"occurrence": "2022", "reported_on": date(2022, 5, 1), "percent": 40,
                          "summary": "a/b~#c", "reporter": None})
    assert flat_state(task) == flatten(state_of(task))


# -- event data as JSON: the orjson walk equals plain() then dumps() ---------------------------


class _Colour(Enum):
    RED = "red"
    ONE = 1


_int64 = st.integers(-2**63, 2**63 - 1)
_moments = st.builds(lambda d, z: d.replace(tzinfo=z),
                     st.datetimes(datetime(1990, 1, 1), datetime(2040, 1, 1)),
                     st.sampled_from((UTC, timezone(timedelta(hours=7)), None)))
_leaf = (st.none() | st.booleans() | _int64 | st.text(max_size=5) | st.floats(allow_nan=False)
         | st.dates() | _moments
         | st.sampled_from((_Colour.RED, _Colour.ONE, DeadlineKind.STANDING, int,
                            parse_deadline("Quý II năm 2022", DeadlineContext(date(2021, 8, 26),
                                                                              2025)),
                            UUID("12345678-1234-5678-1234-567812345678"),
                            Extension(date(2023, 1, 31), datetime(2022, 12, 28, tzinfo=UTC),
                                      False))))
_plain_values = st.recursive(
    _leaf,
    lambda inner: st.lists(inner, max_size=3) | st.tuples(inner, inner)
    | st.frozensets(_int64, max_size=3)
    | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    | st.dictionaries(_int64, inner, max_size=2),  # non-str keys: the slow path
    max_leaves=10)


@settings(max_examples=300, deadline=None)
@given(value=st.dictionaries(st.text(max_size=4), _plain_values, max_size=4))
def test_dumps_plain_writes_the_same_text_as_dumps_of_plain(value):
    assert dumps_plain(value) == dumps(plain(value))


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=datetime(1000, 1, 2), max_value=datetime(9999, 12, 30),
                    timezones=st.sampled_from([UTC, timezone(timedelta(hours=7)),
                                               ZoneInfo("Asia/Ho_Chi_Minh")])))
@example(datetime(1945, 9, 1, 22, 0, tzinfo=ZoneInfo("Asia/Ho_Chi_Minh")))
def test_ledger_time_text_is_fixed_width_utc_and_round_trips(moment):
    text = ledger_time_text(moment)
    instant = moment.astimezone(UTC)
    assert text == instant.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    # (The instant, not ``moment``: a local time in a gap or fold of Asia/Ho_Chi_Minh's
    # history, e.g. 01/09/1945 22:00, never compares equal across zones, by PEP 495.)
    assert len(text) == 27 and parse_ledger_time(text) == instant


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@settings(max_examples=500, deadline=None)
@given(st.integers(min_value=(datetime(1, 1, 1, tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1),
                   max_value=(datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC) - _EPOCH)
                   // timedelta(microseconds=1)))
@example(0)
@example(-1)  # the last microsecond before the epoch: negative numbers floor to the day before
@example(86_400_000_000 - 1)
def test_a_ledger_time_from_microseconds_is_the_text_of_that_moment(micros):
    assert micros_ledger_time(micros) == ledger_time_text(
        _EPOCH + timedelta(microseconds=micros))


_CONTEXT = DeadlineContext(date(2021, 8, 26), 2025)
_SETTLING_DEADLINES = [parse_deadline(text, _CONTEXT) for text in (
    "chậm nhất ngày 30/6/2022", "Năm 2022", "Quý I năm kế hoạch", "Hằng năm",
    "Định kỳ hằng quý, 6 tháng, hằng năm hoặc đột xuất", "Thường xuyên",
    "Sau khi có hướng dẫn của Bộ")]


@st.composite
def settling_tasks(draw):
    """A task as ``obligations_on`` sees it: a deadline of every kind, stored occurrences
    (one-off or per period, some completed), maybe cancelled."""
    deadline = draw(st.sampled_from(_SETTLING_DEADLINES))
    keys = ["once"] if deadline.kind is not DeadlineKind.RECURRING else [
        o.key for o in deadline.occurrences(date(2021, 8, 26), date(2024, 12, 31))]
    occurrences = {}
    for key in draw(st.lists(st.sampled_from(keys), unique=True, max_size=3)):
        due = draw(days)
        completed = draw(st.none() | days)
        occurrences[key] = OccurrenceState(key, due, due, due, completed_on=completed)
    return {"deadline": deadline, "assigned_on": draw(days),
            "cancelled_on": draw(st.none() | days), "occurrences": occurrences}


@settings(max_examples=400, deadline=None)
@given(task=settling_tasks(), later=st.integers(min_value=0, max_value=2000))
def test_a_settled_task_owes_nothing_open_from_that_day_on(task, later):
    """The read model leaves a task out of "what is owed on D" when it settled on or before
    D; that is right only if ``obligations_on`` would have listed nothing open then."""
    from domain.obligations import owed_on, settled_on

    settled = settled_on(task["deadline"], cancelled_on=task["cancelled_on"],
                         occurrences=task["occurrences"])
    if settled is None:
        return
    day = settled + timedelta(days=later)
    statuses = [s for _, s in owed_on(task["deadline"], on=day, **{
        k: v for k, v in task.items() if k != "deadline"})]
    assert not set(statuses) & {TaskStatus.OVERDUE, TaskStatus.IN_PROGRESS,
                                TaskStatus.NOT_DUE, TaskStatus.NO_DEADLINE}


@settings(max_examples=400, deadline=None)
@given(task=settling_tasks(), day=days)
def test_judging_a_task_due_once_by_its_one_occurrence_equals_judging_all_it_holds(task, day):
    """The read model judges a task that ``judged_on_once`` holds for from the one occurrence
    its links carry (``owed_once_on``), every other task from all its stored occurrences."""
    from domain.obligations import judged_occurrence, judged_on_once, owed_on, owed_once_on

    assume(judged_on_once(task["deadline"], task["occurrences"]))
    facts = {"assigned_on": task["assigned_on"], "cancelled_on": task["cancelled_on"],
             "on": day}
    expected = owed_on(task["deadline"], occurrences=task["occurrences"], **facts)
    assert owed_once_on(task["deadline"], occurrence=task["occurrences"].get("once"),
                        **facts) == expected
    # What the links carry: the stored occurrence, or before there is one the fresh one.
    assert owed_once_on(task["deadline"], occurrence=judged_occurrence(
        task["deadline"], task["occurrences"]), **facts) == expected


def test_the_occurrence_judged_is_the_stored_one_or_the_one_the_deadline_gives():
    """Links carry it from the task's assignment on, so that the first event on the
    occurrence (most often a progress report) gives them no new version."""
    from domain.obligations import judged_occurrence

    once, yearly, standing, dormant = (_SETTLING_DEADLINES[0], _SETTLING_DEADLINES[3],
                                       _SETTLING_DEADLINES[5], _SETTLING_DEADLINES[6])
    due = OccurrenceState("once", once.due_on, once.due_on, once.due_on)
    extended = OccurrenceState("once", once.due_on, date(2022, 9, 30), date(2022, 9, 30))
    assert judged_occurrence(once, {}) == due
    assert judged_occurrence(once, {"once": extended}) is extended
    assert judged_occurrence(standing, {}) is None and judged_occurrence(dormant, {}) is None
    assert judged_occurrence(dormant.triggered(date(2023, 3, 1)), {}) == OccurrenceState(
        "once", date(2023, 3, 1), date(2023, 3, 1), date(2023, 3, 1))
    with pytest.raises(ValueError, match="judged on all its occurrences"):
        judged_occurrence(yearly, {})


def _settling_examples():
    """A one-off, a yearly and a standing deadline; the one-off's occurrence done (late, on
    4/7/2022) and open."""
    once, yearly, standing = (_SETTLING_DEADLINES[0], _SETTLING_DEADLINES[3],
                              _SETTLING_DEADLINES[5])
    done = OccurrenceState("once", date(2022, 6, 30), date(2022, 6, 30), date(2022, 6, 30),
                           completed_on=date(2022, 7, 4))
    open_ = OccurrenceState("once", date(2022, 6, 30), date(2022, 6, 30), date(2022, 6, 30))
    return once, yearly, standing, done, open_


def test_a_task_settles_when_cancelled_or_its_only_obligation_is_done():
    from domain.obligations import settled_on

    once, yearly, standing, done, open_ = _settling_examples()
    assert settled_on(once, cancelled_on=None, occurrences={}) is None
    assert settled_on(once, cancelled_on=None, occurrences={"once": open_}) is None
    assert settled_on(once, cancelled_on=None, occurrences={"once": done}) == date(2022, 7, 4)
    assert settled_on(once, cancelled_on=date(2022, 7, 1),
                      occurrences={"once": done}) == date(2022, 7, 1)
    # The day before it settled, the task was still owed (done on 4/7, late).
    assert obligations_on(once, assigned_on=date(2022, 3, 1), cancelled_on=None,
                          occurrences={"once": done}, on=date(2022, 7, 3)) == [
        (done, TaskStatus.OVERDUE)]
    # Recurring and standing tasks keep owing until cancelled, whatever is done.
    year_done = OccurrenceState("2022", date(2022, 12, 31), date(2022, 12, 31),
                                date(2022, 12, 31), completed_on=date(2022, 12, 1))
    assert settled_on(yearly, cancelled_on=None, occurrences={"2022": year_done}) is None
    assert settled_on(standing, cancelled_on=None, occurrences={}) is None
    assert settled_on(standing, cancelled_on=date(2023, 1, 1),
                      occurrences={}) == date(2023, 1, 1)


@settings(max_examples=500, deadline=None)
@given(task=settling_tasks(), later=st.integers(min_value=0, max_value=2000))
def test_a_task_final_on_a_day_owes_one_obligation_of_that_status_from_then_on(task, later):
    """The counts of every agency tally a task final by the day asked about by its stored
    status, without judging it; right only if ``owed_on`` would list exactly that."""
    from domain.obligations import final_status, owed_on

    final = final_status(task["deadline"], cancelled_on=task["cancelled_on"],
                         assigned_on=task["assigned_on"], occurrences=task["occurrences"])
    if final is None:
        return
    day, status = final
    assert day >= task["assigned_on"]
    owed = owed_on(task["deadline"], on=day + timedelta(days=later),
                   **{k: v for k, v in task.items() if k != "deadline"})
    assert [s for _, s in owed] == [status]


def test_a_task_is_final_when_cancelled_or_its_only_obligation_is_done():
    from domain.obligations import final_status

    once, yearly, standing, done, open_ = _settling_examples()
    assigned = {"assigned_on": date(2022, 3, 1)}
    assert final_status(once, cancelled_on=None, occurrences={}, **assigned) is None
    assert final_status(once, cancelled_on=None, occurrences={"once": open_}, **assigned) is None
    assert final_status(once, cancelled_on=None, occurrences={"once": done}, **assigned) == (
        date(2022, 7, 4), TaskStatus.DONE_LATE)
    # Done, then cancelled: cancelled from the cancellation on (done between the two).
    assert final_status(once, cancelled_on=date(2022, 8, 1), occurrences={"once": done},
                        **assigned) == (date(2022, 8, 1), TaskStatus.CANCELLED)
    # Cancelled with an effect before its assignment: final from the assignment.
    assert final_status(once, cancelled_on=date(2022, 1, 1), occurrences={},
                        **assigned) == (date(2022, 3, 1), TaskStatus.CANCELLED)
    year_done = OccurrenceState("2022", date(2022, 12, 31), date(2022, 12, 31),
                                date(2022, 12, 31), completed_on=date(2022, 12, 1))
    assert final_status(yearly, cancelled_on=date(2023, 1, 1),
                        occurrences={"2022": year_done}, **assigned) is None
    assert final_status(standing, cancelled_on=None, occurrences={}, **assigned) is None
    assert final_status(standing, cancelled_on=date(2023, 1, 1), occurrences={},
                        **assigned) == (date(2023, 1, 1), TaskStatus.CANCELLED)


def test_judged_on_once_only_for_tasks_not_recurring_that_hold_no_other_occurrence():
    """What the obligations read model keeps on a task's links (``inline``) instead of
    reading its occurrences: true only where ``obligations_on`` reads no other."""
    from domain.obligations import judged_on_once

    once, yearly, standing, dormant = (_SETTLING_DEADLINES[0], _SETTLING_DEADLINES[3],
                                       _SETTLING_DEADLINES[5], _SETTLING_DEADLINES[6])
    due = OccurrenceState("once", date(2022, 6, 30), date(2022, 6, 30), date(2022, 6, 30))
    year = OccurrenceState("2022", date(2022, 12, 31), date(2022, 12, 31), date(2022, 12, 31))
    assert judged_on_once(once, {}) and judged_on_once(once, {"once": due})
    assert judged_on_once(standing, {}) and judged_on_once(dormant, {})
    assert not judged_on_once(yearly, {}) and not judged_on_once(yearly, {"2022": year})
    assert not judged_on_once(once, {"once": due, "2022": year})  # the general way


def _listed_one_by_one(deadline, *, assigned_on, cancelled_on, occurrences, on):
    """``listed_obligations`` as it was before it took due dates from the schedule: each key
    due by ``on`` (and the next), and each stored one, sorted by due date, fresh ones due
    as the deadline says."""
    from domain.obligations import fresh_occurrence
    from domain.rules import occurrence_status

    keys = [o.key for o in deadline.occurrences(assigned_on, on)]
    keys += [k for k in occurrences if k not in keys]

    def original_due(key):
        known = occurrences.get(key)
        return known.original_due if known else deadline.occurrence_due(key)

    return [(occ, occurrence_status(occ, on, assigned_on=assigned_on,
                                    cancelled_on=cancelled_on))
            for key in sorted(set(keys), key=lambda k: (original_due(k), k))
            for occ in [occurrences.get(key) or fresh_occurrence(deadline, key)]]


@settings(max_examples=300, deadline=None)
@given(task=settling_tasks(), on=days)
def test_listed_obligations_judge_each_listed_and_stored_occurrence_by_due_date(task, on):
    from domain.obligations import listed_obligations

    if task["deadline"].kind is DeadlineKind.STANDING or task["deadline"].is_dormant:
        return  # never listed this way
    assert listed_obligations(on=on, **task) == _listed_one_by_one(on=on, **task)
