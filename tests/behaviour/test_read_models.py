"""The read models' queries on both stores: occurrences, both time axes, reorganisations,
history, read-your-writes, the worker and outdated copies."""

from __future__ import annotations

import itertools
import threading
from datetime import date, datetime

import pytest
from eventsourcing.persistence import PersistenceError

from domain.clock import LOCAL_TZ
from domain.errors import UnreadableEvent, ValidationError
from domain.ids import task_id
from projections import registry
from projections.audit import changes, flat_state, state_of, unflatten
from projections.base import plain
from projections.db import Db
from projections.queries import ReadModels
from projections.rebuild import rebuild
from projections.runner import OutdatedProjection, Runner, run_worker
from projections.tables import dumps, loads
from tests.behaviour.helpers import OPERATOR, agency
from tests.behaviour.projection_helpers import T_OFFICE as OFFICE
from tests.behaviour.projection_helpers import issue_small
from tests.integrity.helpers import Attacker


@pytest.fixture
def small(ledger):
    receipt = issue_small(ledger)
    return {o: task_id(receipt.entity_id, o) for o in ("1", "2", "3", "4", "5", "6")}


def caught_up(ledger) -> ReadModels:
    Runner(ledger).catch_up()
    return ReadModels(ledger)


def rows(result, role=None) -> dict[tuple[str, str | None], dict]:
    return {(r["ordinal"], r["occurrence"]): r for r in result["obligations"]
            if role is None or r["role"] == role}


def test_one_obligation_per_occurrence_standing_never_overdue_dormant_waits(ledger, small,
                                                                            clock):
    models = caught_up(ledger)
    owed = rows(models.obligations("T-B", effective_on=date(2023, 6, 1)), "lead")
    assert {k: v["status"] for k, v in owed.items() if k[0] == "2"} == {
        ("2", "2021"): "overdue", ("2", "2022"): "overdue", ("2", "2023"): "in_progress"}
    quarterly = [k for k in owed if k[0] == "6"]
    assert quarterly[0] == ("6", "2021-Q3") and quarterly[-1] == ("6", "2023-Q2")
    standing = rows(models.obligations("T-A", effective_on=date(2030, 1, 1)), "lead")
    assert standing[("3", None)]["status"] == "no_deadline"
    assert standing[("3", None)]["days_overdue"] == 0
    dormant = rows(models.obligations("T-C", effective_on=date(2030, 1, 1)), "lead")
    assert dormant[("4", None)]["status"] == "not_due"
    clock.set("2022-03-01 09:00")
    ledger.trigger_deadline(OFFICE, small["4"], due_on=date(2022, 6, 30),
                            basis="Thông tư 01/2022/TT-BNV")
    models = caught_up(ledger)
    triggered = rows(models.obligations("T-C", effective_on=date(2022, 7, 5)), "lead")
    assert triggered[("4", "once")]["status"] == "overdue"
    assert triggered[("4", "once")]["days_overdue"] == 5
    # The group's members see the group's task; the group sees it too.
    assert ("5", "once") in rows(models.obligations("T-A", effective_on=date(2021, 9, 1)),
                                 "group_lead")
    assert ("5", "once") in rows(models.obligations("T-G", effective_on=date(2021, 9, 1)),
                                 "lead")
    # T-B leads task 2, which its group coordinates: each occurrence once, as lead.
    both_ways = models.obligations("T-B", effective_on=date(2023, 6, 1))
    assert sorted((r["occurrence"], r["role"]) for r in both_ways["obligations"]
                  if r["ordinal"] == "2") == [("2021", "lead"), ("2022", "lead"),
                                              ("2023", "lead")]
    assert sum(both_ways["counts"].values()) == len(both_ways["obligations"])
    # Before the assignment there is nothing to owe.
    assert models.obligations("T-A", effective_on=date(2021, 8, 1))["obligations"] == []


def test_pages_of_obligations_are_slices_of_the_whole_answer_and_counts_cover_all(
        ledger, small, clock):
    """Only a page's obligations are rendered; the order and the counts still come from
    judging all of them, so the pages put together are the whole answer. A page judges
    one-off tasks on what their links carry (a completion, an extension), the others on
    their occurrences."""
    clock.set("2021-10-05 10:00")
    ledger.report_completion(agency("T-A"), small["1"], completed_on=date(2021, 10, 4),
                             summary="Đã ban hành kế hoạch")
    ledger.confirm_completion(OFFICE, small["1"])  # late: due 30/9
    ledger.request_extension(OPERATOR, small["5"], occurrence="once", reason="Chờ số liệu",
                             requested_due=date(2024, 3, 31))
    ledger.grant_extension(OFFICE, small["5"], occurrence="once")
    models = caught_up(ledger)
    for agency_code, closed, day in (("T-B", False, date(2023, 6, 1)),
                                     ("T-A", True, date(2023, 6, 1)),
                                     ("T-A", True, date(2021, 10, 3))):
        whole = models.obligations(agency_code, effective_on=day, include_closed=closed)
        total = len(whole["obligations"])
        assert total > 3 and "page" not in whole
        pages = [models.obligations(agency_code, effective_on=day,
                                    include_closed=closed, limit=3, offset=start)
                 for start in range(0, total + 3, 3)]
        assert [row for page in pages for row in page["obligations"]] == whole["obligations"]
        for start, page in zip(range(0, total + 3, 3), pages, strict=True):
            assert page["page"] == {"offset": start, "limit": 3, "total": total}
            assert page["counts"] == whole["counts"]
        assert sum(whole["counts"].values()) == total
    shown = {(r["ordinal"], r["occurrence"]): r for start in range(0, 30, 3)
             for r in models.obligations("T-A", effective_on=date(2023, 6, 1),
                                         include_closed=True, limit=3,
                                         offset=start)["obligations"]}
    assert shown[("1", "once")]["status"] == "done_late"
    assert shown[("5", "once")]["status"] == "in_progress"  # through its group, extended
    assert shown[("5", "once")]["due_on"] == "2024-03-31"
    statuses = {r["status"] for r in models.obligations(
        "T-A", effective_on=date(2023, 6, 1), include_closed=True)["obligations"]}
    assert len(statuses) >= 3  # the order by status is exercised
    for bad in ({"limit": 0}, {"offset": -1}):
        with pytest.raises(ValidationError):
            models.obligations("T-A", **bad)


def test_a_paged_obligation_carries_everything_stored_about_its_occurrence(ledger, small,
                                                                           clock):
    """A page is judged on the few columns statuses need, and its own rows are then read in
    full: what a page shows of an occurrence is what the whole answer shows."""
    tid = small["2"]  # "Hằng năm", T-B leads
    clock.set("2022-12-01 09:00")
    ledger.report_completion(OPERATOR, tid, occurrence="2022", summary="Đã xong",
                             completed_on=date(2022, 11, 30))
    ledger.reject_completion(OPERATOR, tid, occurrence="2022", reason="Chưa đạt")
    ledger.request_extension(OPERATOR, tid, occurrence="2022", reason="Chờ số liệu",
                             requested_due=date(2023, 1, 31))
    ledger.report_completion(OPERATOR, tid, occurrence="2022", summary="Đã bổ sung",
                             completed_on=date(2022, 12, 1))
    models = caught_up(ledger)
    day = date(2022, 12, 2)
    whole = rows(models.obligations("T-B", effective_on=day))[("2", "2022")]
    for limit in (1, 50):
        pages = [models.obligations("T-B", effective_on=day, limit=limit, offset=start)
                 for start in range(0, 50, limit)]
        paged = rows({"obligations": [r for p in pages for r in p["obligations"]]})
        assert paged[("2", "2022")] == whole
    assert whole["rejected_completions"] == 1
    assert whole["pending_completion_on"] == "2022-12-01"
    assert whole["extensions"] == {"requested": 1, "granted": 0, "rejected": 0,
                                   "pending_due": "2023-01-31"}


def test_an_obligation_shows_its_task_s_progress_as_reported_by_then(ledger, small, clock):
    """How many progress reports a task has and the last one, in an agency's obligations
    and a directive's progress, at every position: none before the first report."""
    tid = small["1"]  # "once", T-A leads
    clock.set("2021-09-01 09:00")
    before_any = ledger.recorder.max_notification_id()
    ledger.report_progress(agency("T-A"), tid, summary="Đang xây dựng dự thảo", percent=30)
    first = ledger.recorder.max_notification_id()
    clock.set("2021-09-10 09:00")
    ledger.report_progress(agency("T-A"), tid, summary="Đã trình UBND tỉnh", percent=90,
                           obstacles="Chờ ý kiến Sở Tư pháp")
    models = caught_up(ledger)
    day = date(2021, 9, 15)

    def progress(position=None):
        answers = (models.obligations("T-A", effective_on=day, as_of_position=position,
                                      limit=50),
                   models.directive_summary("12/KH-UBND", effective_on=day,
                                            as_of_position=position))
        shown = [(r["progress_reports"], r["last_progress"]) for answer in answers
                 for r in answer["obligations"] if r["ordinal"] == "1"]
        assert len(shown) == 2 and shown[0] == shown[1]
        return shown[0]

    assert progress(before_any) == (0, None)
    count, last = progress(first)
    assert count == 1 and last["summary"] == "Đang xây dựng dự thảo" and last["percent"] == 30
    count, last = progress()
    assert count == 2 and last["summary"] == "Đã trình UBND tỉnh"
    assert last["obstacles"] == "Chờ ý kiến Sở Tư pháp" and last["reported_on"] == "2021-09-10"
    others = [r for r in models.obligations("T-A", effective_on=day)["obligations"]
              if r["ordinal"] != "1"]
    assert others and all(r["progress_reports"] == 0 and r["last_progress"] is None
                          for r in others)


def test_a_one_off_task_s_rows_change_with_its_due_date_not_with_its_reports(
        ledger, small, clock):
    """Progress reports, two in five events, give the task's progress row a new version and
    nothing else. The links carry a one-off task's occurrence from the assignment on (as
    its deadline gives it until one is stored), so the first report, which stores the
    occurrence, leaves them as they were; the occurrence's row does not count reports
    (answers show the task's count), so later reports leave it alone too. An extension,
    which moves the due date, gives both a new version."""
    tid = str(small["1"])  # "once", T-A leads and T-B coordinates
    db = Db(ledger)

    def versions() -> tuple[dict[str, int], int]:
        caught_up(ledger)
        with db.read() as cur:
            cur.execute(f"SELECT agency, COUNT(*) FROM {db.name('obl_task_agency_g1')} "
                        "WHERE task_id = %s GROUP BY agency", (tid,))
            links = dict(cur.fetchall())
            cur.execute(f"SELECT COUNT(*) FROM {db.name('obl_occurrence_g1')} "
                        "WHERE task_id = %s", (tid,))
            return links, cur.fetchone()[0]

    assert versions() == ({"T-A": 1, "T-B": 1}, 0)
    clock.set("2021-09-01 09:00")
    ledger.report_progress(agency("T-A"), small["1"], summary="Đang xây dựng dự thảo")
    assert versions() == ({"T-A": 1, "T-B": 1}, 1)
    ledger.report_progress(agency("T-A"), small["1"], summary="Đã có dự thảo", percent=60)
    assert versions() == ({"T-A": 1, "T-B": 1}, 1)
    ledger.request_extension(agency("T-A"), small["1"], requested_due=date(2021, 10, 31),
                             reason="Chờ góp ý")
    ledger.grant_extension(OFFICE, small["1"])
    assert versions() == ({"T-A": 2, "T-B": 2}, 3)  # the request, then the grant
    owed = rows(caught_up(ledger).obligations("T-A", effective_on=date(2021, 10, 15)))
    assert owed[("1", "once")]["due_on"] == "2021-10-31"
    assert owed[("1", "once")]["progress_reports"] == 2


def test_freshness_is_reused_for_max_age_and_asked_again_without_it(ledger, small, clock):
    """The HTTP answer cache asks for the projection's freshness on every request; with
    ``max_age`` a token read earlier by this process stands in for the database's."""
    models = caught_up(ledger)
    before = models.freshness("obligations", max_age=3600)
    clock.set("2022-03-01 09:00")
    ledger.trigger_deadline(OFFICE, small["4"], due_on=date(2022, 6, 30),
                            basis="Thông tư 01/2022/TT-BNV")
    Runner(ledger).catch_up()
    assert models.freshness("obligations", max_age=3600) == before  # reused, not asked
    after = models.freshness("obligations")
    assert after[0] == before[0] and after[1] > before[1]
    assert models.freshness("obligations", max_age=3600) == after  # the newer one is kept
    assert models.freshness("no-such-projection") is None


def test_a_stale_token_serves_while_one_thread_asks_for_a_newer_one(ledger, small, clock,
                                                                     monkeypatch):
    """Between ``max_age`` and twice that, the token still serves, and the first caller to
    find it so starts one thread asking the database for a newer one (under load, every
    request arriving during that round trip had asked too, and the asker waited)."""
    models = caught_up(ledger)
    now = [1000.0]
    models._monotonic = lambda: now[0]
    token = models.freshness("obligations", max_age=1)
    asking, answer = threading.Event(), threading.Event()
    questions = []
    live_generations = registry.live_generations

    def slow_database(cur, db):
        questions.append((threading.current_thread().name, now[0]))
        if threading.current_thread().name.startswith("freshness"):  # not the Runner's
            asking.set()
            assert answer.wait(10)
        return live_generations(cur, db)

    monkeypatch.setattr(registry, "live_generations", slow_database)
    now[0] += 1.5  # older than max_age, younger than twice it
    try:
        assert models.recent_freshness("obligations", 1) == token  # served, and asked for
        assert asking.wait(10)
        assert models.recent_freshness("obligations", 1) == token
        assert models.freshness("obligations", max_age=1) == token
        assert questions == [("freshness-obligations", 1001.5)]  # one, on its own thread
        clock.set("2022-03-01 09:00")
        ledger.trigger_deadline(OFFICE, small["4"], due_on=date(2022, 6, 30),
                                basis="Thông tư 01/2022/TT-BNV")
        Runner(ledger).catch_up()
        now[0] += 0.6  # 2.1 s: too old even while someone asks
        assert models.recent_freshness("obligations", 1) is None
    finally:
        answer.set()
    newer = None
    for _ in range(1000):
        newer = models.recent_freshness("obligations", 1)  # 0.6 s old once it lands
        if newer not in (None, token):
            break
        threading.Event().wait(0.01)
    assert newer is not None and newer[0] == token[0] and newer[1] > token[1]



def test_as_of_what_was_known_versus_on_a_day_as_known_now(ledger, small, clock):
    clock.set("2021-10-05 10:00")
    ledger.report_completion(agency("T-A"), small["1"], completed_on=date(2021, 9, 28),
                             summary="Đã ban hành kế hoạch")
    ledger.confirm_completion(OFFICE, small["1"])
    models = caught_up(ledger)
    then = models.obligations("T-A", as_of=datetime(2021, 10, 1, 17, tzinfo=LOCAL_TZ),
                              include_closed=True)
    assert then["effective_on"] == "2021-10-01"
    assert rows(then, "lead")[("1", "once")]["status"] == "overdue"
    known_now = models.obligations("T-A", effective_on=date(2021, 10, 1), include_closed=True)
    assert rows(known_now, "lead")[("1", "once")]["status"] == "done_on_time"
    assert known_now["as_of"]["basis"] == "everything folded so far"
    assert then["as_of"]["basis"] == "recorded time"
    # Open obligations only, by default: the completed one is gone.
    assert ("1", "once") not in rows(models.obligations("T-A", effective_on=date(2021, 10, 1)))
    # The directive's progress agrees, and an as-of position sees the state before.
    summary = models.directive_summary("12/KH-UBND", effective_on=date(2021, 10, 1))
    assert summary["counts"]["done_on_time"] == 1
    before = ledger.recorder.max_notification_id() - 1
    earlier = models.directive_summary("12/KH-UBND", as_of_position=before,
                                       effective_on=date(2021, 10, 1))
    assert "done_on_time" not in earlier["counts"]


def test_a_completed_task_is_owed_until_its_completion_day_and_again_once_reopened(
        ledger, small, clock):
    """Open obligations leave out the tasks settled by the day before judging them (the
    links carry the day): a completion recorded later still shows the task as owed on the
    days before it, as known now and as known then, and a reopening brings it back."""
    models = caught_up(ledger)
    unknown = ledger.recorder.max_notification_id()
    clock.set("2021-10-05 10:00")
    ledger.report_completion(agency("T-A"), small["1"], completed_on=date(2021, 9, 28),
                             summary="Đã ban hành kế hoạch")
    ledger.confirm_completion(OFFICE, small["1"])
    models = caught_up(ledger)

    def owed(code, role, day, **when):
        answer = models.obligations(code, effective_on=day, **when)
        assert sum(answer["counts"].values()) == len(answer["obligations"])
        return rows(answer, role).get(("1", "once"), {}).get("status")

    for code, role in (("T-A", "lead"), ("T-B", "coordinating")):
        assert owed(code, role, date(2021, 9, 27)) == "in_progress"
        assert owed(code, role, date(2021, 9, 28)) is None  # settled that day
        assert owed(code, role, date(2022, 3, 1)) is None
        assert owed(code, role, date(2022, 3, 1), as_of_position=unknown) == "overdue"
    assert rows(models.obligations("T-A", effective_on=date(2021, 9, 28), include_closed=True),
                "lead")[("1", "once")]["status"] == "done_on_time"

    clock.set("2021-10-20 10:00")
    ledger.reopen_task(OFFICE, small["1"], occurrence="once", reason="Chưa đạt yêu cầu")
    models = caught_up(ledger)
    assert owed("T-A", "lead", date(2021, 10, 20)) == "overdue"
    assert owed("T-B", "coordinating", date(2021, 10, 20)) == "overdue"


def test_a_cancelled_task_is_owed_until_its_cancellation_and_known_as_cancelled_after(
        ledger, small, clock):
    """A cancellation reaches every agency's obligations (a task is judged from its links),
    from its effective day on, and not as of a moment before it was recorded."""
    models = caught_up(ledger)
    before = models.obligations("T-A", effective_on=date(2021, 12, 1))["as_of"]["position"]
    clock.set("2021-12-10 09:00")
    ledger.cancel_task(OFFICE, small["1"], reason="Không còn phù hợp",
                       effective_on=date(2021, 12, 5))
    models = caught_up(ledger)
    for code, role in (("T-A", "lead"), ("T-B", "coordinating")):
        on_4 = rows(models.obligations(code, effective_on=date(2021, 12, 4)), role)
        assert on_4[("1", "once")]["status"] == "overdue"
        assert on_4[("1", "once")]["cancelled_on"] == "2021-12-05"
        on_5 = models.obligations(code, effective_on=date(2021, 12, 5), include_closed=True)
        assert rows(on_5, role)[("1", "once")]["status"] == "cancelled"
        assert ("1", "once") not in rows(models.obligations(code, effective_on=date(2021, 12, 5)))
    then = models.obligations("T-A", as_of_position=before, effective_on=date(2021, 12, 5))
    assert rows(then, "lead")[("1", "once")]["status"] == "overdue"
    assert rows(then, "lead")[("1", "once")]["cancelled_on"] is None


def test_a_merger_moves_open_obligations_to_the_successor_but_not_finished_ones(ledger, small,
                                                                                clock):
    clock.set("2021-09-20 10:00")
    ledger.report_completion(agency("T-A"), small["1"], completed_on=date(2021, 9, 20),
                             summary="Xong")
    ledger.confirm_completion(OFFICE, small["1"])
    clock.set("2022-01-01 08:00")
    ledger.merge_agency(OPERATOR, "T-A", "T-B", date(2022, 1, 1))
    models = caught_up(ledger)
    successor = rows(models.obligations("T-B", effective_on=date(2022, 2, 1),
                                        include_closed=True))
    assert successor[("3", None)]["via"] == "T-A"  # the standing task moved
    # Done before the merger: it stays with T-A; T-B sees it only as its coordinator.
    assert (successor[("1", "once")]["role"], successor[("1", "once")]["via"]) == (
        "coordinating", None)
    merged = models.obligations("T-A", effective_on=date(2022, 2, 1), include_closed=True)
    assert merged["agency"]["status"] == "merged"
    assert rows(merged, "lead")[("1", "once")]["status"] == "done_on_time"
    counts = {a["agency"]: a for a in models.obligation_counts(
        effective_on=date(2022, 2, 1))["agencies"]}
    assert counts["T-A"]["counts"] == {"done_on_time": 1}


def test_counts_on_the_days_a_task_becomes_done_and_then_cancelled(ledger, small, clock):
    """Every agency's counts tally a task final by the day from the status its links store
    and judge the others: on the day before and the day of each change they equal the
    domain's judgment of the task aggregates, lead by lead."""
    from collections import Counter

    from domain.obligations import owed_on

    clock.set("2021-09-20 10:00")
    ledger.report_completion(agency("T-A"), small["1"], completed_on=date(2021, 9, 20),
                             summary="Xong")
    ledger.confirm_completion(OFFICE, small["1"])
    clock.set("2021-12-10 09:00")
    for ordinal in ("1", "3"):  # done, then cancelled; a standing task cancelled
        ledger.cancel_task(OFFICE, small[ordinal], reason="Không còn phù hợp",
                           effective_on=date(2021, 12, 5))
    models = caught_up(ledger)
    for day in (date(2021, 9, 19), date(2021, 9, 20), date(2021, 12, 4), date(2021, 12, 5)):
        expected: dict[str, Counter[str]] = {}
        for tid in small.values():
            task = ledger.task(tid)
            for _, status in owed_on(task.deadline, assigned_on=task.assigned_on,
                                     cancelled_on=task.cancelled_on,
                                     occurrences=task.occurrences, on=day):
                expected.setdefault(task.lead, Counter())[status.value] += 1
        counts = models.obligation_counts(effective_on=day)["agencies"]
        assert {row["agency"]: row["counts"] for row in counts} == {
            code: dict(sorted(c.items())) for code, c in expected.items()}, day
    # (The days chosen do reach both kinds of final status.)
    for day, status in ((date(2021, 9, 20), "done_on_time"), (date(2021, 12, 5), "cancelled")):
        assert any(status in row["counts"]
                   for row in models.obligation_counts(effective_on=day)["agencies"])


def test_history_lists_every_event_with_the_state_before_and_after(ledger, small, clock):
    clock.set("2021-09-01 09:00")
    from domain.actors import SourceDocument

    ctx = agency("T-A").__class__(agency("T-A").actor,
                                  source_document=SourceDocument("15/BC-SA", date(2021, 9, 1)))
    ledger.report_progress(ctx, small["1"], summary="Đã có dự thảo", percent=50)
    ledger.request_extension(agency("T-A"), small["1"], requested_due=date(2021, 10, 31),
                             reason="Chờ góp ý")
    ledger.grant_extension(OFFICE, small["1"])
    history = caught_up(ledger).history("task", "12/KH-UBND#1")
    events = history["events"]
    assert [e["type"] for e in events] == ["Task.Assigned", "Task.ProgressReported",
                                           "Task.ExtensionRequested", "Task.ExtensionGranted"]
    assert events[0]["state_before"] is None
    for earlier, later in itertools.pairwise(events):
        assert later["state_before"] == earlier["state_after"]
    assert events[1]["actor"] == {"principal": "token:T-A", "role": "agency", "agency": "T-A"}
    assert events[1]["source_document"] == {"number": "15/BC-SA", "issued_on": "2021-09-01"}
    # Taken from the events themselves (the audit rows hold only which event came when).
    assert events[1]["recorded_at"] == "2021-09-01T02:00:00+00:00"  # 09:00 in Vietnam
    assert events[1]["data"]["summary"] == "Đã có dự thảo"
    assert events[1]["data"]["percent"] == 50
    assert events[2]["data"]["requested_due"] == "2021-10-31"
    assert events[2]["source_document"] is None
    assert all(e["correlation_id"] for e in events)
    assert {"path": "/occurrences/once/due_on", "before": "2021-09-30",
            "after": "2021-10-31"} in events[3]["changes"]
    assert events[-1]["state_after"] == plain(state_of(ledger.task(small["1"])))
    agency_history = caught_up(ledger).history("agency", "T-A")
    assert [e["type"] for e in agency_history["events"]] == ["Agency.Registered"]
    with pytest.raises(Exception, match="not a task"):
        caught_up(ledger).history("task", str(ledger.agency("T-A").id))


def test_history_changes_are_the_diffs_of_the_entity_folded_to_each_version(ledger, small,
                                                                            clock):
    """The audit rows store no diffs: the query folds the entity. Its changes and states must be
    what version 1 of the projection stored, the diff of the flattened aggregate at versions
    v-1 and v (as JSON), and states as of a position must stop at that position."""
    clock.set("2021-09-01 09:00")
    ledger.report_progress(agency("T-A"), small["1"], summary="a/b~#c", percent=50)
    ledger.request_extension(agency("T-A"), small["1"], requested_due=date(2021, 10, 31),
                             reason="Chờ góp ý")
    ledger.grant_extension(OFFICE, small["1"])
    ledger.appoint_head(OPERATOR, "T-A", "Nguyễn Văn An", "Giám đốc", date(2021, 9, 1))
    models = caught_up(ledger)
    for kind, entity, uid in (("task", "12/KH-UBND#1", small["1"]),
                              ("agency", "T-A", ledger.agency("T-A").id)):
        events = models.history(kind, entity)["events"]
        flat_before: dict = {}
        for version, event in enumerate(events, start=1):
            flat_after = flat_state(ledger.repository.get(uid, version=version))
            assert event["changes"] == loads(dumps(changes(flat_before, flat_after)))
            assert event["state_after"] == loads(dumps(unflatten(flat_after)))
            flat_before = flat_after
        cut = events[-2]["position"]
        earlier = models.history(kind, entity, as_of_position=cut)["events"]
        assert earlier == [e for e in events if e["position"] <= cut]


def test_read_your_writes_with_a_worker_that_wakes_on_new_events(ledger, small, store_url):
    models = caught_up(ledger)
    receipt = ledger.report_progress(agency("T-B"), small["2"], summary="Quý 3",
                                     occurrence="2021")
    status = {p["name"]: p for p in models.status()["projections"]}
    assert all(p["lag"] == 1 for p in status.values())
    assert models.wait_for(receipt.position, timeout=0) is False
    stop = threading.Event()
    # PostgreSQL: a NOTIFY must wake the worker (the poll is far longer than the wait below);
    # SQLite has no notifications and is polled.
    poll = 600.0 if store_url.startswith("postgres") else 0.05
    worker_ledger = type(ledger)(store_url)
    worker = threading.Thread(target=run_worker, args=(worker_ledger,),
                              kwargs={"stop": stop, "poll": poll})
    worker.start()
    try:
        assert models.wait_for(receipt.position, timeout=60) is True
        later = ledger.report_progress(agency("T-B"), small["2"], summary="Quý 4",
                                       occurrence="2021")
        assert models.wait_for(later.position, timeout=60) is True
    finally:
        stop.set()
        worker.join(timeout=60)
        worker_ledger.close()
    assert {p["lag"] for p in models.status()["projections"]} == {0}


def test_projections_folding_together_apply_each_event_once_to_a_shared_aggregate(ledger,
                                                                                   small):
    """Obligations and accountability fold the same aggregates: at the same position they
    share the object (each event applied once); one that reloaded its own copy after a cache
    miss folds that copy by itself, and the tables stay what a fold from zero gives."""
    from tests.behaviour.projection_helpers import digests, live_generations, scratch_copies

    runner = Runner(ledger)
    runner.catch_up()
    obligations = runner.attached["obligations"].cache
    accountability = runner.attached["accountability"].cache
    assert obligations.get(small["1"]).aggregate is accountability.get(small["1"]).aggregate
    accountability.pop(small["1"])  # as if evicted: reloaded from the log on the next page
    ledger.report_progress(agency("T-A"), small["1"], summary="Đang làm", percent=10)
    ledger.report_progress(agency("T-A"), small["1"], summary="Gần xong", percent=90)
    runner.page_size = 1
    runner.catch_up()
    mine, theirs = obligations.get(small["1"]), accountability.get(small["1"])
    assert mine.aggregate is not theirs.aggregate
    assert mine.aggregate.version == theirs.aggregate.version == ledger.task(small["1"]).version
    # Both missed it (evicted from both caches): one read and one replay, shared again.
    obligations.pop(small["1"])
    accountability.pop(small["1"])
    ledger.report_progress(agency("T-A"), small["1"], summary="Xong", percent=100)
    runner.catch_up()
    mine, theirs = obligations.get(small["1"]), accountability.get(small["1"])
    assert mine.aggregate is theirs.aggregate
    assert mine.aggregate.version == ledger.task(small["1"]).version
    live = live_generations(ledger)
    with scratch_copies(ledger) as scratch:
        assert digests(ledger, scratch) == digests(ledger, live)


def test_a_copy_built_by_other_code_is_refused_until_rebuilt(ledger, small):
    models = caught_up(ledger)
    db = Db(ledger)
    with db.write() as cur:
        cur.execute(f"UPDATE {db.name('proj_state')} SET fingerprint='old' WHERE "
                    "name='obligations'")
    with pytest.raises(OutdatedProjection, match="ledger rebuild obligations"):
        models.obligations("T-A")
    runner = Runner(ledger)
    runner.catch_up()
    assert runner.outdated == {"obligations"}
    assert {p["name"]: p["outdated"] for p in models.status()["projections"]}["obligations"]
    rebuild(ledger, ["obligations"], grace=0)
    assert models.obligations("T-A")["agency"]["code"] == "T-A"


@pytest.mark.postgres
def test_a_query_judging_rows_longer_than_the_idle_timeout_still_answers(pg_schema_url,
                                                                        clock, monkeypatch):
    """The store's idle-in-transaction timeout guards writes (1 s here, 5 s by default); a
    read-model query that works in Python between its statements for longer (the counts of
    a 1M-event ledger took more than 5 s) must not be cut off by it."""
    import time

    from domain.application import Ledger
    from projections import queries

    ledger = Ledger(pg_schema_url, clock=clock,
                    env={"POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": "1"})
    try:
        issue_small(ledger)
        Runner(ledger).catch_up()
        models = ReadModels(ledger)
        expected = models.obligation_counts()
        judged = queries._decode_links

        def slow(*args):
            time.sleep(1.5)  # idle in the transaction between two statements
            return judged(*args)

        monkeypatch.setattr(queries, "_decode_links", slow)
        assert models.obligation_counts() == expected
    finally:
        ledger.close()


@pytest.mark.postgres
def test_an_agency_s_open_links_as_of_a_moment_are_bounded_by_their_own_index(pg_schema_url,
                                                                             clock):
    """The links' as-of index (``TableSpec.as_of_index``) stores the end of a version's
    validity and the day its task settled as expressions (``or_unset``); PostgreSQL uses it
    for a condition only if the query spells the same expressions. Then the scan is bounded
    by the agency, the moment and the day together, instead of reading every version of
    the agency and dropping those a question does not want (at 1M events ~11,000 of
    ~15,000). Checked on the plan of the statement the query sends, with the primary key out
    of the way (dropped in the read's transaction, which is rolled back)."""
    from dataclasses import replace

    from domain.application import Ledger
    from projections import queries

    ledger = Ledger(pg_schema_url, clock=clock)
    try:
        issue_small(ledger)
        models = caught_up(ledger)
        with models.db.read() as cur:
            snap = models._snapshot(cur, "obligations", None, None)
            snap = replace(snap, mode="time", bound=snap.ledger_time)  # "as of a moment"
            table = snap.table("obl_task_agency")
            physical = snap.projection.spec("obl_task_agency").physical(snap.generation)
            sent = []

            class Recording:
                def execute(self, sql, params=()):
                    sent.append((sql, params))
                    return cur.execute(sql, params)

            queries._agency_links(Recording(), snap, ["T-A"], date(2025, 1, 1))
            cur.execute(f"ALTER TABLE {table} DROP CONSTRAINT {physical}_pkey")
            cur.execute("SET LOCAL enable_seqscan = off")
            sql, params = sent[-1]
            plan = "\n".join(row[0] for row in cur.execute(f"EXPLAIN {sql}", params).fetchall())
        bounds = [line for line in plan.splitlines() if "Index Cond" in line]
        assert f"{physical}_t" in plan, plan
        assert bounds and all(f"COALESCE({column}" in bounds[0]
                              for column in ("to_time", "settled_on")), plan
        assert "from_time <=" in bounds[0], plan
    finally:
        ledger.close()


def _cut_short(store_url: str, position: int) -> None:
    """Damage the stored event at ``position`` behind the ledger's back: its JSON cut short."""
    attacker = Attacker(store_url)
    try:
        attacker.rewrite(position, lambda state: state[:20])
    finally:
        attacker.close()


def test_the_worker_logs_a_damaged_event_as_an_error_and_folds_nothing_past_it(
        ledger, store_url, small, caplog):
    """A row edited behind the ledger's back stops the projections there: the worker keeps
    retrying (an operator may restore the row) and says why at error level, every time."""
    models = caught_up(ledger)
    receipt = ledger.report_progress(agency("T-B"), small["2"], summary="Quý 3",
                                     occurrence="2021")
    _cut_short(store_url, receipt.position)
    stop = threading.Event()
    worker_ledger = type(ledger)(store_url)
    worker = threading.Thread(target=run_worker, args=(worker_ledger,),
                              kwargs={"stop": stop, "poll": 0.01})
    with caplog.at_level("WARNING", logger="ledger.projections"):
        worker.start()
        try:
            assert models.wait_for(receipt.position, timeout=2) is False
        finally:
            stop.set()
            worker.join(timeout=60)
            worker_ledger.close()
    damaged = [r for r in caplog.records if f"at position {receipt.position}" in r.getMessage()]
    assert damaged and all(r.levelname == "ERROR" for r in damaged)
    assert "cannot be read" in damaged[0].getMessage()
    assert {p["lag"] for p in models.status()["projections"]} == {1}


def test_the_worker_folds_the_events_ahead_of_a_damaged_one_in_the_same_page(
        ledger, store_url, small):
    """The projections stop at the damaged event itself, not at the start of its page: what
    was recorded before it stays visible while an operator restores the row."""
    models = caught_up(ledger)
    before, damaged, after = [
        ledger.report_progress(agency("T-B"), small["2"], summary=f"Quý {n}", occurrence="2021")
        for n in (2, 3, 4)]
    _cut_short(store_url, damaged.position)
    runner = Runner(type(ledger)(store_url))
    try:
        with pytest.raises(UnreadableEvent, match=f"at position {damaged.position}"):
            runner.catch_up()
    finally:
        runner.ledger.close()
    assert models.wait_for(before.position, timeout=0) is True
    assert models.wait_for(damaged.position, timeout=0) is False
    assert {p["lag"] for p in models.status()["projections"]} == {
        after.position - before.position}


def test_rows_asked_for_by_key_are_found_whatever_characters_the_keys_hold(ledger, small):
    """PostgreSQL receives the keys as one text it splits (see ``Snapshot.select_in``); a key
    holding the separator must neither split into others nor lose the rest."""
    models = caught_up(ledger)
    with models.db.read() as cur:
        snap = models._snapshot(cur, "obligations", None, None)
        plain = snap.select_in(cur, "obl_agency", ("code",), "code", ["T-B", "T-A", "T-B"])
        odd = snap.select_in(cur, "obl_agency", ("code",), "code", ["T-A", "T-B\x1fT-C", "T-B"])
        none = snap.select_in(cur, "obl_agency", ("code",), "code", [])
    assert sorted(code for (code,) in plain) == ["T-A", "T-B"]
    assert sorted(code for (code,) in odd) == ["T-A", "T-B"]
    assert none == []


def test_a_statement_sent_ahead_returns_its_rows_and_leaves_the_transaction_usable(ledger,
                                                                                   small):
    """``Cursor.ahead`` (PostgreSQL: pipeline mode) gives the rows a plain execute gives, the
    statements after the block run as usual, and a failure inside the block leaves the
    connection fit for the next transaction."""
    caught_up(ledger)
    db = Db(ledger)
    sql = f"SELECT task_id, role FROM {db.name('obl_task_agency_g1')} ORDER BY 1, 2"
    with db.read() as cur:
        expected = cur.execute(sql).fetchall()
    assert len(expected) >= 6  # a link per task at least
    with db.read() as cur:
        with cur.ahead(sql) as rows:
            assert _pipelining(cur) is (db.dialect == "postgres")  # sent, not yet fetched
            got = rows()  # (a caller judges other rows first, while the server reads)
        assert not _pipelining(cur)
        assert cur.execute("SELECT 1").fetchall() == [(1,)]
    assert got == expected
    with pytest.raises(RuntimeError), db.read() as cur, cur.ahead(sql):
        raise RuntimeError("the caller fails before fetching")
    with db.read() as cur:
        assert cur.execute(sql).fetchall() == expected


def test_statements_sent_ahead_together_answer_each_in_its_order(ledger, small):
    """``Cursor.ahead_all`` (PostgreSQL: several statements in one pipeline) gives each
    statement the rows a plain execute gives it, each to its own fetch function."""
    caught_up(ledger)
    db = Db(ledger)
    links = f"SELECT task_id, role FROM {db.name('obl_task_agency_g1')} ORDER BY 1, 2"
    tasks = f"SELECT task_id, lead FROM {db.name('obl_task_g1')} WHERE lead = %s ORDER BY 1"
    with db.read() as cur:
        expected = [cur.execute(links).fetchall(), cur.execute(tasks, ("T-A",)).fetchall(),
                    cur.execute(tasks, ("T-B",)).fetchall()]
    assert all(expected) and expected[1] != expected[2]  # three different answers
    with db.read() as cur:
        with cur.ahead_all([(links, ()), (tasks, ("T-A",)), (tasks, ("T-B",))]) as rows:
            assert _pipelining(cur) is (db.dialect == "postgres")
            got = [rows[0](), rows[1](), rows[2]()]
        assert not _pipelining(cur)
        assert cur.execute("SELECT 1").fetchall() == [(1,)]
    assert got == expected
    # A statement that fails among them (a generation dropped meanwhile) fails the read,
    # and the next read is served as usual.
    failing = f"SELECT task_id FROM {db.name('obl_task_g999')}"
    with pytest.raises(PersistenceError, match=r"no such table|does not exist"), \
            db.read() as cur, \
            cur.ahead_all([(links, ()), (failing, ()), (tasks, ("T-A",))]) as rows:
        [fetch() for fetch in rows]
    with db.read() as cur:
        assert cur.execute(tasks, ("T-A",)).fetchall() == expected[1]


def _pipelining(cur) -> bool:
    """Whether the PostgreSQL connection under ``cur`` is in pipeline mode."""
    from psycopg import pq

    return cur.dialect == "postgres" and (
        cur.raw.connection.pgconn.pipeline_status != pq.PipelineStatus.OFF)


def test_tasks_numbered_and_lettered_in_one_directive_are_listed_in_order(ledger):
    """Ordinals are the document's own (free text): "2", "10", "a" and "II.1" in one
    directive order numbers by value and before words, instead of failing to compare."""
    from dataclasses import replace

    from tests.behaviour.projection_helpers import AGENCIES, SMALL, TASKS

    base = TASKS[0]
    spec = replace(SMALL, number="13/KH-UBND", tasks=tuple(
        replace(base, ordinal=o, content=f"Nhiệm vụ {o}") for o in ("a", "10", "II.1", "2")))
    ledger.issue_directive(OPERATOR, spec, register_agencies=AGENCIES)
    models = caught_up(ledger)
    owed = models.obligations("T-A", effective_on=date(2021, 9, 1))["obligations"]
    assert [o["ordinal"] for o in owed if o["directive_number"] == "13/KH-UBND"
            and o["role"] == "lead"] == ["2", "10", "II.1", "a"]
    summary = models.directive_summary("13/KH-UBND", effective_on=date(2021, 9, 1))
    assert [o["ordinal"] for o in summary["obligations"]] == ["2", "10", "II.1", "a"]
