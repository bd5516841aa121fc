"""Worked examples from the seeds: the 768 annex (Quảng Ngãi, 2021) imported, tasks completed on
time and late, extensions requested before and after expiry, a head of Sở Nội vụ replaced in
mid-2022, a merger in 2025 — and the accountability record attributing each shortfall to the
right person, with the events that prove it. Both stores."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from domain.clock import LOCAL_TZ
from domain.ids import task_id
from projections.queries import ReadModels
from projections.runner import Runner
from tests.behaviour.helpers import OFFICE, OPERATOR, agency, import_plan

AN, BINH = "Nguyễn Văn An", "Trần Thị Bình"
CUONG, DUNG = "Lê Văn Cường", "Phạm Thị Dung"
SNV = agency("QNG-SNV")


def local(moment: str) -> datetime:
    return datetime.fromisoformat(moment).replace(tzinfo=LOCAL_TZ)


def record_history(ledger, clock) -> dict[str, object]:
    """The story; returns the positions of the events the tests look for."""
    _, imported = import_plan(ledger)
    plan = ledger.find_directive("768/QĐ-UBND")
    t = {o: task_id(plan.id, o) for o in plan.task_ordinals}
    p: dict[str, object] = {"assigned": dict(zip(plan.task_ordinals, imported.positions[-45:],
                                                 strict=True))}
    p["an"] = ledger.appoint_head(OPERATOR, "QNG-SNV", AN, "Giám đốc Sở", date(2020, 1, 1)
                                  ).position
    p["cuong"] = ledger.appoint_head(OPERATOR, "QNG-STTTT", CUONG, "Giám đốc Sở",
                                     date(2019, 5, 1)).position
    p["dung"] = ledger.appoint_head(OPERATOR, "QNG-SKHCN", DUNG, "Giám đốc Sở",
                                    date(2020, 1, 1)).position

    def complete(ordinal, occurrence, day, confirm_at):
        clock.set(f"{day} 15:00")
        reported = ledger.report_completion(SNV if ordinal[0] in "15" else OPERATOR,
                                            t[ordinal], occurrence=occurrence,
                                            completed_on=date.fromisoformat(day),
                                            summary="Đã hoàn thành").position
        clock.set(f"{confirm_at} 09:00")
        confirmed = ledger.confirm_completion(OFFICE, t[ordinal], occurrence=occurrence).position
        return reported, confirmed

    # 1.1 "Trước 25/12 năm báo cáo", 2021: the plan comes on 10/1/2022 — late, under An.
    p["1.1/2021"] = complete("1.1", "2021", "2022-01-10", "2022-01-12")
    # 1.3 "Quý II năm 2022" (30/6/2022): done on 28/6, on time, under An.
    p["1.3"] = complete("1.3", None, "2022-06-28", "2022-06-29")
    # 1.2 "Quý I năm kế hoạch", 2022 (31/3/2022): never done — overdue, An's.
    clock.set("2022-06-30 17:00")
    p["an_left"] = ledger.record_head_left(OPERATOR, "QNG-SNV", AN, date(2022, 6, 30)).position
    clock.set("2022-07-01 08:00")
    p["binh"] = ledger.appoint_head(OPERATOR, "QNG-SNV", BINH, "Giám đốc Sở",
                                    date(2022, 7, 1)).position
    # 5.3, 2022: the first report is rejected, the second confirmed — on time, Bình's.
    clock.set("2022-12-05 10:00")
    first = ledger.report_completion(SNV, t["5.3"], occurrence="2022",
                                     completed_on=date(2022, 12, 5), summary="Báo cáo").position
    clock.set("2022-12-08 10:00")
    p["5.3 rejected"] = (first, ledger.reject_completion(
        OFFICE, t["5.3"], occurrence="2022", reason="Thiếu số liệu").position)
    p["5.3"] = complete("5.3", "2022", "2022-12-10", "2022-12-12")
    # 5.2, 2022 (31/12/2022): extension asked on 15/12, before expiry, granted to 31/3/2023;
    # done 20/3/2023 — on time.
    clock.set("2022-12-15 10:00")
    p["5.2 request"] = ledger.request_extension(SNV, t["5.2"], occurrence="2022",
                                                requested_due=date(2023, 3, 31),
                                                reason="Chờ số liệu của Bộ").position
    clock.set("2022-12-16 10:00")
    p["5.2 grant"] = ledger.grant_extension(OFFICE, t["5.2"], occurrence="2022").position
    # 1.1, 2022 (25/12/2022): extension asked on 28/12, after expiry; granted a new working
    # date, but lateness stays; done 20/1/2023 — late, Bình's.
    clock.set("2022-12-28 10:00")
    p["1.1 request"] = ledger.request_extension(SNV, t["1.1"], occurrence="2022",
                                                requested_due=date(2023, 1, 31),
                                                reason="Chậm do dịch").position
    clock.set("2022-12-29 10:00")
    p["1.1 grant"] = ledger.grant_extension(OFFICE, t["1.1"], occurrence="2022").position
    # 5.4, 2022 (31/12/2022): done 10/1/2023 — late.
    p["5.4/2022"] = complete("5.4", "2022", "2023-01-10", "2023-01-11")
    p["1.1/2022"] = complete("1.1", "2022", "2023-01-20", "2023-01-21")
    p["5.2/2022"] = complete("5.2", "2022", "2023-03-20", "2023-03-22")
    # 2025: Sở Thông tin và Truyền thông merges into Sở Khoa học và Công nghệ.
    clock.set("2025-03-01 08:00")
    p["before merger"] = local("2025-03-01 07:59")
    p["merger"] = ledger.merge_agency(OPERATOR, "QNG-STTTT", "QNG-SKHCN",
                                      date(2025, 3, 1)).position
    return p


@pytest.fixture
def story(ledger, clock):
    positions = record_history(ledger, clock)
    Runner(ledger, page_size=50).catch_up()
    return positions


def head(report: dict, person: str) -> dict:
    (found,) = [r for r in report["heads"] if r["person"] == person]
    return found


def shortfalls(record: dict, kind: str) -> dict[str, dict]:
    return {f"{s['reference']} {s['occurrence']}": s for s in record["shortfalls"]
            if s["kind"] == kind}


def test_a_head_replaced_mid_year_answers_only_for_their_own_shortfalls(ledger, story):
    models = ReadModels(ledger)
    report = models.accountability("2022", "QNG-SNV", effective_on=date(2023, 6, 30))
    assert report["provisional"] is True and report["rulebook"]["version"] == "2024.1"
    assert {r["person"] for r in report["heads"]} == {AN, BINH}

    an = head(report, AN)
    assert an["tenure"] == {"person": AN, "position": "Giám đốc Sở", "from": "2020-01-01",
                            "to": "2022-06-30", "acting": False}
    assert (an["fallen_due"], an["done_on_time"], an["done_late"], an["overdue"]) == (3, 1, 1, 1)
    assert an["on_time"] == [{"task_id": an["on_time"][0]["task_id"],
                              "reference": "768/QĐ-UBND#1.3", "occurrence": "once"}]
    late = shortfalls(an, "done_late")
    assert set(late) == {"768/QĐ-UBND#1.1 2021"}
    # Proof: the assignment (due date), the report and its confirmation, An's tenure.
    assert late["768/QĐ-UBND#1.1 2021"]["evidence"] == sorted(
        [story["assigned"]["1.1"], *story["1.1/2021"], story["an"], story["an_left"]])
    assert late["768/QĐ-UBND#1.1 2021"]["attributed_on"] == "2022-01-10"
    overdue = shortfalls(an, "overdue")
    assert set(overdue) == {"768/QĐ-UBND#1.2 2022"}
    assert overdue["768/QĐ-UBND#1.2 2022"]["due"] == "2022-03-31"
    assert set(shortfalls(an, "overdue_at_period_end")) == {"768/QĐ-UBND#1.2 2022"}
    assert an["on_time_ratio"] == pytest.approx(1 / 3, abs=1e-4)
    assert an["meets_threshold"] is False and "chưa đạt" in an["advice"]

    binh = head(report, BINH)
    assert (binh["fallen_due"], binh["done_on_time"], binh["done_late"]) == (1, 1, 0)
    assert binh["on_time_ratio"] == 1.0 and binh["meets_threshold"] is True
    # Not done by 31/12/2022: the one extended after expiry, and 5.4.
    assert set(shortfalls(binh, "overdue_at_period_end")) == {
        "768/QĐ-UBND#1.1 2022", "768/QĐ-UBND#5.4 2022"}
    assert binh["extensions"] == {"requested": 2, "requested_after_expiry": 1, "granted": 2,
                                  "rejected": 0}
    (rejected,) = shortfalls(binh, "completion_rejected").values()
    # Proof: the rejected report and its rejection, who led 5.3 (its assignment), Bình's tenure.
    assert rejected["evidence"] == sorted(
        [story["assigned"]["5.3"], *story["5.3 rejected"], story["binh"]])


def test_late_completions_count_for_the_head_on_the_completion_date(ledger, story):
    report = ReadModels(ledger).accountability("2023", "QNG-SNV",
                                               effective_on=date(2023, 6, 30))
    assert [r["person"] for r in report["heads"]] == [BINH]
    binh = report["heads"][0]
    assert set(shortfalls(binh, "done_late")) == {"768/QĐ-UBND#1.1 2022",
                                                  "768/QĐ-UBND#5.4 2022"}
    # The extension asked after expiry did not cure lateness: due stays 25/12/2022.
    assert shortfalls(binh, "done_late")["768/QĐ-UBND#1.1 2022"]["due"] == "2022-12-25"
    # The one asked in time moved the due date to 31/3/2023 and it was met.
    assert {(o["reference"], o["occurrence"]) for o in binh["on_time"]} == {
        ("768/QĐ-UBND#5.2", "2022")}
    assert set(shortfalls(binh, "overdue")) == {"768/QĐ-UBND#1.2 2023"}
    assert (binh["fallen_due"], binh["done_on_time"], binh["done_late"], binh["overdue"]) == (
        4, 1, 2, 1)


def test_as_of_a_moment_the_record_is_what_the_ledger_knew_then(ledger, story):
    models = ReadModels(ledger)
    then = models.accountability("2022", "QNG-SNV", as_of=local("2022-06-30 12:00"))
    assert then["effective_on"] == "2022-06-30"
    (an,) = then["heads"]
    assert an["person"] == AN and an["tenure"]["to"] is None  # departure not recorded yet
    assert (an["done_on_time"], an["done_late"], an["overdue"]) == (1, 1, 1)
    # The same day judged with what the ledger knows now: An's tenure has its end.
    now = models.accountability("2022", "QNG-SNV", effective_on=date(2022, 6, 30))
    assert head(now, AN)["tenure"]["to"] == "2022-06-30"


def test_a_merger_never_moves_past_blame(ledger, story):
    models = ReadModels(ledger)
    before = models.accountability("2024", "QNG-STTTT", as_of=story["before merger"],
                                   effective_on=date(2025, 6, 30))
    after = models.accountability("2024", "QNG-STTTT", effective_on=date(2025, 6, 30))
    assert [r["person"] for r in after["heads"]] == [CUONG]
    assert after["heads"] == before["heads"]
    assert head(after, CUONG)["overdue"] >= 1
    # From the merger on, the successor's head answers for the merged agency's obligations.
    in_2025 = models.accountability("2025", "QNG-SKHCN", effective_on=date(2026, 1, 15))
    dung = head(in_2025, DUNG)
    moved = shortfalls(dung, "overdue")
    assert "768/QĐ-UBND#1.5 2025" in moved  # a Sở TT&TT task, due 31/12/2025
    assert story["merger"] in moved["768/QĐ-UBND#1.5 2025"]["evidence"]
    assert not models.accountability("2025", "QNG-STTTT",
                                     effective_on=date(2026, 1, 15))["heads"]


def test_group_led_tasks_have_no_single_head_and_are_shown_apart(ledger, story):
    report = ReadModels(ledger).accountability("2022", effective_on=date(2023, 6, 30))
    groups = {g["agency"]: g for g in report["groups"]}
    assert "QNG-G-SBN" in groups
    assert groups["QNG-G-SBN"]["person"] is None
    assert "768/QĐ-UBND#4.3 once" in shortfalls(groups["QNG-G-SBN"], "overdue")
    assert all(r["agency"] not in groups for r in report["heads"])
    # Agencies whose head the ledger does not know are listed as such, never guessed.
    assert {r["agency"] for r in report["without_head"]} >= {"QNG-STP", "QNG-VPUBND"}


def test_obligations_show_extensions_before_and_after_expiry(ledger, story):
    models = ReadModels(ledger)
    owed = models.obligations("QNG-SNV", effective_on=date(2023, 1, 5), include_closed=True)
    rows = {(o["reference"], o["occurrence"]): o for o in owed["obligations"]
            if o["role"] == "lead"}
    timely = rows[("768/QĐ-UBND#5.2", "2022")]
    assert (timely["original_due"], timely["due_on"], timely["status"]) == (
        "2022-12-31", "2023-03-31", "in_progress")
    assert timely["extended"] is True and timely["extensions"]["granted"] == 1
    late_ask = rows[("768/QĐ-UBND#1.1", "2022")]
    assert (late_ask["due_on"], late_ask["lateness_due"], late_ask["status"]) == (
        "2023-01-31", "2022-12-25", "overdue")
    assert late_ask["days_overdue"] == 11
    assert rows[("768/QĐ-UBND#1.3", "once")]["status"] == "done_on_time"
    assert owed["agency"]["head"]["person"] == BINH


def test_one_agencys_records_are_its_part_of_everyones(ledger, story):
    """Asked for one agency, the records gathered from only the tasks it may answer for
    (itself, and agencies merged into it) are those the whole answer holds for it."""
    models = ReadModels(ledger)
    for period, day, among in (("2022", date(2023, 6, 30), "QNG-G-SBN"),  # a group
                               ("2025", date(2026, 1, 15), "QNG-SKHCN")):  # after a merger
        everyone = models.accountability(period, effective_on=day)
        agencies = {r["agency"] for part in ("heads", "groups", "without_head")
                    for r in everyone[part]}
        assert among in agencies
        for code in sorted(agencies):
            mine = models.accountability(period, code, effective_on=day)
            for part in ("heads", "groups", "without_head"):
                assert mine[part] == [r for r in everyone[part] if r["agency"] == code]
    merged_in = models.accountability("2025", "QNG-SKHCN", effective_on=date(2026, 1, 15))
    assert "768/QĐ-UBND#1.5 2025" in shortfalls(head(merged_in, DUNG), "overdue")
