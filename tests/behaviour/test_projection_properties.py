"""Property: for random command sequences, the live projections equal a rebuild from zero, and
as-of(T) equals a rebuild over the events up to T — on SQLite and PostgreSQL.

The live projections are folded while the commands run, a page of random size at random
moments (as a worker would), so paging, the in-memory entity cache and its reloads all take
part. Comparisons are of whole tables (every column, every version) and of query answers.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.application import Ledger, read_journal
from domain.clock import local_date
from domain.errors import DomainError
from domain.ids import task_id
from domain.obligations import owed_on
from projections.queries import ReadModels
from projections.rebuild import rebuild
from projections.runner import Runner
from tests.behaviour.helpers import OPERATOR
from tests.behaviour.projection_helpers import (
    digests,
    fold_checking_renders,
    fresh_store,
    issue_small,
    live_generations,
    scratch_copies,
)
from tests.conftest import FakeClock

TASK_ORDINALS = ("1", "2", "3", "4", "5", "6")
# Occurrences each task can have (a few wrong ones too: refusals must store nothing).
VALID_OCCURRENCES = {
    "1": ("once", None), "2": ("2021", "2022", "2023", "once"), "3": (None,),
    "4": ("once", None), "5": ("once", "2022"),
    "6": ("2021-Q4", "2022-Q1", "2022-Q3", "2023-Q2", None),
}
AGENCY_CODES = ("T-A", "T-B", "T-C")
PEOPLE = ("Nguyễn Văn An", "Trần Thị Bình", "Lê Văn Cường")

task_ix = st.sampled_from(TASK_ORDINALS)
occ = st.integers(0, 4)
decision = st.sampled_from(("accept", "refuse", "leave"))
common = st.one_of(
    st.tuples(st.just("advance"), st.integers(0, 24 * 80)),
    st.tuples(st.just("catch"), st.integers(1, 9)),
    st.tuples(st.just("extension"), task_ix, occ, st.integers(1, 120), decision),
    st.tuples(st.just("completion"), task_ix, occ, st.integers(0, 90), decision),
    st.tuples(st.just("progress"), task_ix, occ),
)
drastic = st.one_of(
    st.tuples(st.just("cancel"), task_ix),
    st.tuples(st.just("revoke"),),
)
rare = st.one_of(
    st.tuples(st.just("reopen"), task_ix, occ, st.booleans()),
    st.tuples(st.just("reassign"), task_ix, st.sampled_from(AGENCY_CODES)),
    st.tuples(st.just("trigger"), task_ix, st.integers(0, 200)),
    st.tuples(st.just("appoint"), st.sampled_from(AGENCY_CODES), st.sampled_from(PEOPLE),
              st.integers(0, 400)),
    st.tuples(st.just("left"), st.sampled_from(AGENCY_CODES), st.sampled_from(PEOPLE)),
    st.tuples(st.just("merge"), st.sampled_from(AGENCY_CODES), st.sampled_from(AGENCY_CODES)),
    st.tuples(st.just("rename"), st.sampled_from(AGENCY_CODES), st.integers(1, 9)),
    st.tuples(st.just("decide_extension"), task_ix, occ, decision),
    st.tuples(st.just("decide_completion"), task_ix, occ, decision),
)
# Mostly the everyday work, sometimes reorganisations, seldom a cancellation or revocation.
op = st.integers(0, 99).flatmap(lambda i: common if i < 72 else rare if i < 96 else drastic)


def apply(ledger: Ledger, clock: FakeClock, runner: Runner, directive_id, step: tuple) -> None:
    """Run one step; a command the ledger refuses stores nothing and the sequence goes on."""
    kind = step[0]
    today = local_date(clock())
    if kind == "advance":
        clock.advance(hours=step[1])
        return
    if kind == "catch":
        runner.page_size = step[1]
        runner.step()
        return
    ctx = OPERATOR
    try:
        if kind in ("appoint", "left", "merge", "rename", "revoke"):
            if kind == "appoint":
                ledger.appoint_head(ctx, step[1], step[2], "Giám đốc",
                                    today - timedelta(days=step[3]))
            elif kind == "left":
                ledger.record_head_left(ctx, step[1], step[2], today)
            elif kind == "merge":
                ledger.merge_agency(ctx, step[1], step[2], today)
            elif kind == "rename":
                ledger.rename_agency(ctx, step[1], f"Sở mới {step[2]}", today)
            else:
                ledger.revoke_directive(ctx, directive_id, revoked_on=today, reason="Thay thế")
            return
        tid = task_id(directive_id, step[1])
        choices = VALID_OCCURRENCES[step[1]]
        uses_occurrence = kind not in ("cancel", "reassign", "trigger")
        key = choices[step[2] % len(choices)] if uses_occurrence else None
        if kind == "progress":
            ledger.report_progress(ctx, tid, summary="Đang thực hiện", occurrence=key)
        elif kind == "extension":
            task = ledger.task(tid)
            known = task.occurrences.get(key or "once")
            try:
                due = known.due_on if known else task.deadline.occurrence_due(key or "once")
            except ValueError:
                due = today
            ledger.request_extension(ctx, tid, occurrence=key, reason="Chờ hướng dẫn",
                                     requested_due=max(today, due) + timedelta(days=step[3]))
            decide_extension(ledger, tid, key, step[4])
        elif kind == "decide_extension":
            decide_extension(ledger, tid, key, step[3])
        elif kind == "completion":
            completed_on = max(date(2021, 8, 26), today - timedelta(days=step[3]))
            ledger.report_completion(ctx, tid, occurrence=key, summary="Đã xong",
                                     completed_on=completed_on)
            decide_completion(ledger, tid, key, step[4])
        elif kind == "decide_completion":
            decide_completion(ledger, tid, key, step[3])
        elif kind == "cancel":
            ledger.cancel_task(ctx, tid, reason="Không còn phù hợp")
        elif kind == "reopen":
            ledger.reopen_task(ctx, tid, occurrence=key if step[3] else None, reason="Mở lại")
        elif kind == "reassign":
            ledger.reassign_task(ctx, tid, lead=step[2], reason="Điều chỉnh")
        elif kind == "trigger":
            ledger.trigger_deadline(ctx, tid, due_on=today + timedelta(days=step[2]),
                                    basis="Hướng dẫn của Bộ")
    except DomainError:
        pass


def decide_extension(ledger: Ledger, tid, key, how: str) -> None:
    if how == "accept":
        ledger.grant_extension(OPERATOR, tid, occurrence=key)
    elif how == "refuse":
        ledger.reject_extension(OPERATOR, tid, occurrence=key, reason="Không đủ lý do")


def decide_completion(ledger: Ledger, tid, key, how: str) -> None:
    if how == "accept":
        ledger.confirm_completion(OPERATOR, tid, occurrence=key)
    elif how == "refuse":
        ledger.reject_completion(OPERATOR, tid, occurrence=key, reason="Chưa đạt")


def answers(models: ReadModels, **when) -> dict:
    """Every query the read models offer (or the refusal it gave), without the part that says
    where it was read."""

    def ask(query, *args, **kwargs):
        try:
            result = query(*args, **kwargs)
        except DomainError as exc:
            return (type(exc).__name__, str(exc))
        return {k: v for k, v in result.items() if k != "as_of"}

    out = {}
    for code in (*AGENCY_CODES, "T-G"):
        out[f"obligations {code}"] = ask(models.obligations, code, include_closed=True, **when)
    for period in ("2021", "2022", "2023-Q1"):
        out[f"accountability {period}"] = ask(models.accountability, period, **when)
    out["directive"] = ask(models.directive_summary, "12/KH-UBND", **when)
    out["counts"] = ask(models.obligation_counts, **when)
    recorded = {k: v for k, v in when.items() if k != "effective_on"}
    for ordinal in TASK_ORDINALS:
        out[f"history {ordinal}"] = ask(models.history, "task", f"12/KH-UBND#{ordinal}",
                                        **recorded)
    return out


OPEN_STATUSES = {"overdue", "in_progress", "not_due", "no_deadline"}


def own_obligations(models: ReadModels, code: str, day: date, *,
                    include_closed: bool = True) -> set[tuple]:
    """(ordinal, occurrence, status, role) of what ``code`` owes itself on ``day``, as the
    read model answers (not through a group or a merged agency)."""
    answer = models.obligations(code, effective_on=day, include_closed=include_closed,
                                include_groups=False)
    return {(r["ordinal"], r["occurrence"], r["status"], r["role"])
            for r in answer["obligations"] if r["via"] is None}


def owed_by_aggregates(ledger: Ledger, directive_id, code: str, day: date) -> set[tuple]:
    """The same, judged by the domain on the task aggregates themselves: the read model
    stores copies of their facts (the links carry the task's judging columns) and must
    judge them as the domain does."""
    out = set()
    for ordinal in TASK_ORDINALS:
        task = ledger.task(task_id(directive_id, ordinal))
        if code == task.lead:
            role = "lead"
        elif code in task.coordinating:
            role = "coordinating"
        else:
            continue
        for occ, status in owed_on(task.deadline, assigned_on=task.assigned_on,
                                   cancelled_on=task.cancelled_on,
                                   occurrences=task.occurrences, on=day):
            out.add((ordinal, occ.key if occ else None, status.value, role))
    return out


@pytest.mark.slow
@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow, HealthCheck.data_too_large])
@given(steps=st.lists(op, min_size=5, max_size=40), page=st.integers(1, 12), data=st.data())
def test_live_equals_rebuild_and_as_of_equals_rebuild_up_to_then(store_url, steps, page, data):
    with fresh_store(store_url) as url:
        clock = FakeClock("2021-08-26 09:00")
        ledger = Ledger(url, clock=clock)
        try:
            directive_id = issue_small(ledger).entity_id
            runner = Runner(ledger, page_size=page, cache_size=3)
            for step in steps:
                apply(ledger, clock, runner, directive_id, step)
            runner.page_size = page
            runner.catch_up()
            journal = read_journal(ledger, 0, 100_000)
            head = journal[-1].position

            live = live_generations(ledger)
            before = digests(ledger, live)
            with scratch_copies(ledger) as scratch:
                assert digests(ledger, scratch) == before  # every version, every column

            # As of a position and as of a recorded time: the rows valid then are what a
            # fold of the events up to then leaves current, and every query agrees.
            position = data.draw(st.integers(1, head), label="as-of position")
            moment = journal[position - 1].recorded_at
            upto = max(e.position for e in journal if e.recorded_at <= moment)
            day = data.draw(st.dates(date(2021, 8, 1), date(2024, 6, 30)), label="judged on")
            models = ReadModels(ledger)
            # An agency in a merger answers for the other's open obligations too, and shows
            # a task it reaches both ways once: compare the others.
            merged = {code for step in steps if step[0] == "merge" for code in step[1:]}
            for code in set(AGENCY_CODES) - merged:
                owed = owed_by_aggregates(ledger, directive_id, code, day)
                assert own_obligations(models, code, day) == owed
                # Open ones only: the tasks settled by the day are left out unjudged.
                assert own_obligations(models, code, day, include_closed=False) == {
                    row for row in owed if row[2] in OPEN_STATUSES}
            # Every agency's counts (tasks final by the day tallied from their stored
            # status, the others judged): the aggregates' obligations by lead; a merger
            # moves the open ones, so there only the totals are compared.
            by_lead: dict[str, Counter[str]] = defaultdict(Counter)
            for ordinal in TASK_ORDINALS:
                task = ledger.task(task_id(directive_id, ordinal))
                for _, status in owed_on(task.deadline, assigned_on=task.assigned_on,
                                         cancelled_on=task.cancelled_on,
                                         occurrences=task.occurrences, on=day):
                    by_lead[task.lead][status.value] += 1
            counts = {row["agency"]: row["counts"]
                      for row in models.obligation_counts(effective_on=day)["agencies"]}
            assert sum(map(Counter, counts.values()), Counter()) == sum(by_lead.values(),
                                                                        Counter())
            for code in set(AGENCY_CODES) - merged:
                assert counts.get(code, {}) == dict(by_lead[code])
            # Pages of any size, one after another, are the whole answer, each with its
            # counts: a page is judged on a few columns and its own rows are read after.
            code = data.draw(st.sampled_from(AGENCY_CODES), label="paged agency")
            closed = data.draw(st.booleans(), label="closed ones too")
            size = data.draw(st.integers(1, 5), label="page size")
            asked = {"effective_on": day, "include_closed": closed}
            whole = models.obligations(code, **asked)
            total = len(whole["obligations"])
            pages = [models.obligations(code, limit=size, offset=start, **asked)
                     for start in range(0, total + 1, size)]
            assert [row for p in pages for row in p["obligations"]] == whole["obligations"]
            assert all(p["counts"] == whole["counts"] and p["page"]["total"] == total
                       for p in pages)
            with scratch_copies(ledger, until=position) as scratch:
                assert digests(ledger, scratch, at=("pos", position)) == digests(
                    ledger, live, at=("pos", position))
                assert answers(ReadModels(ledger, generations=scratch), effective_on=day) == (
                    answers(ReadModels(ledger), as_of_position=position, effective_on=day))
            with scratch_copies(ledger, until=upto) as scratch:
                from projections.tables import ledger_time_text

                assert digests(ledger, scratch, at=("pos", upto)) == digests(
                    ledger, live, at=("time", ledger_time_text(moment)))
                assert answers(ReadModels(ledger, generations=scratch), effective_on=day) == (
                    answers(ReadModels(ledger), as_of=moment, effective_on=day))

            # A real rebuild (claim, build, switch) leaves the same tables, now live.
            result = rebuild(ledger, grace=0)
            assert all(r["position"] == head for r in result.values())
            assert digests(ledger, live_generations(ledger)) == before
        finally:
            ledger.close()


# Steps for the render check: rare events (reopenings, reassignments, triggers) as often as
# common ones, and cancellations so that there is something to reopen; no revocation, which
# would refuse every later command.
busy = st.one_of(common, rare, st.tuples(st.just("cancel"), task_ix))


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(steps=st.lists(busy, min_size=20, max_size=80))
def test_rendering_what_an_event_changes_equals_rendering_everything(steps):
    """Every kind of event the commands record (reopenings of the task or of one occurrence,
    reassignments, triggers, mergers too), rendered in part where it can be: the same rows as
    rendering everything (``fold_checking_renders`` asserts it event by event). The fold
    needs no particular store: SQLite only."""
    with fresh_store("sqlite://") as url:
        clock = FakeClock("2021-08-26 09:00")
        ledger = Ledger(url, clock=clock)
        try:
            directive_id = issue_small(ledger).entity_id
            runner = Runner(ledger, page_size=5)
            for step in steps:
                apply(ledger, clock, runner, directive_id, step)
            events = [ledger.mapper.to_domain_event(n) for n in
                      ledger.recorder.select_notifications(start=0, limit=100_000)]
            fold_checking_renders(events)
        finally:
            ledger.close()
