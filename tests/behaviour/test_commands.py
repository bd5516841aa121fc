"""Commands through the Ledger: who may write, reorganisations, versions, concurrency."""

from __future__ import annotations

from datetime import date

import pytest

from domain.application import Ledger
from domain.errors import (
    ConcurrentWrite,
    InvalidTransition,
    NotLeadAgency,
    NotPermitted,
    StaleVersion,
    UnknownTask,
)
from domain.ids import task_id
from tests.behaviour.helpers import INSPECTOR, OFFICE, OPERATOR, agency, import_plan, stored_count


@pytest.fixture
def plan(ledger):
    import_plan(ledger)
    return ledger.find_directive("768/QĐ-UBND")


def test_only_the_lead_requests_and_only_the_office_decides(ledger, plan):
    task = task_id(plan.id, "6.9")  # lead Sở Tài chính; coordinating Sở Tư pháp, STNMT...
    before = stored_count(ledger)
    with pytest.raises(NotLeadAgency):
        ledger.request_extension(agency("QNG-STP"), task, requested_due=date(2022, 3, 31),
                                 reason="x")
    with pytest.raises(NotPermitted):
        ledger.report_progress(INSPECTOR, task, summary="x")
    with pytest.raises(NotPermitted):
        ledger.grant_extension(agency("QNG-STC"), task)
    assert stored_count(ledger) == before
    ledger.report_progress(agency("QNG-STP"), task, summary="Đã góp ý dự thảo")  # coordinator
    with pytest.raises(NotLeadAgency):  # Sở Y tế neither leads nor coordinates 6.9
        ledger.report_progress(agency("QNG-SYT"), task, summary="x")
    # ...but it is one of "Các sở, ban, ngành" coordinating 6.8.
    ledger.report_progress(agency("QNG-SYT"), task_id(plan.id, "6.8"), summary="Đã góp ý")
    ledger.request_extension(agency("QNG-STC"), task, requested_due=date(2022, 3, 31),
                             reason="Chờ ý kiến các sở")
    receipt = ledger.grant_extension(OFFICE, task)
    assert receipt.version == 4 and receipt.position == before + 4


def test_group_lead_members_report_progress_and_the_office_records_completion(ledger, plan,
                                                                            clock):
    task = task_id(plan.id, "5.1")  # lead "Các sở ngành, địa phương, đơn vị"
    ledger.report_progress(agency("QNG-SYT"), task, summary="Sở Y tế đã trình Đề án")
    with pytest.raises(NotPermitted):
        ledger.report_completion(agency("QNG-SYT"), task, completed_on=date(2021, 8, 26),
                                 summary="x")
    clock.set("2022-12-01 08:00")
    ledger.report_completion(OFFICE, task, completed_on=date(2022, 11, 30),
                             summary="Tổng hợp: 100% cơ quan đã phê duyệt")
    ledger.confirm_completion(OFFICE, task)
    assert ledger.task(task).occurrence("once").completed_on == date(2022, 11, 30)


def test_a_merged_lead_hands_its_open_tasks_to_the_successor(ledger, plan, clock):
    task = task_id(plan.id, "7.1")  # lead Sở Thông tin và Truyền thông
    clock.set("2025-03-01 08:00")
    ledger.merge_agency(OPERATOR, "QNG-STTTT", "QNG-SKHCN", date(2025, 3, 1))
    with pytest.raises(NotPermitted, match=r"merged since 01/03/2025.*successor is QNG-SKHCN"):
        ledger.report_progress(agency("QNG-STTTT"), task, summary="x", occurrence="2025")
    ledger.report_progress(agency("QNG-SKHCN"), task, summary="Tiếp nhận nhiệm vụ",
                           occurrence="2025")
    # Past accountability is not rewritten: the task still names its original lead.
    assert ledger.task(task).lead == "QNG-STTTT"
    with pytest.raises(InvalidTransition):
        ledger.reassign_task(OFFICE, task, lead="QNG-STTTT", reason="x")


def test_stale_version_is_refused(ledger, plan):
    task = task_id(plan.id, "1.3")
    ledger.report_progress(agency("QNG-SNV"), task, summary="a", expected_version=1)
    with pytest.raises(StaleVersion, match="expected version 1 but the current version is 2"):
        ledger.report_progress(agency("QNG-SNV"), task, summary="b", expected_version=1)


def test_a_concurrent_write_to_the_same_task_is_a_conflict(ledger, plan, store_url, clock):
    task = task_id(plan.id, "1.3")
    other = Ledger(store_url, clock=clock)
    try:
        loaded = other.task(task)  # both writers now hold version 1
        ledger.report_progress(agency("QNG-SNV"), task, summary="first")
        loaded.report_progress(occurrence=None, reported_on=date(2021, 8, 26), percent=None,
                               summary="second", reporter="QNG-SNV", meta={"actor": "x"},
                               timestamp=clock())
        with pytest.raises(ConcurrentWrite):
            other._save(agency("QNG-SNV"), loaded, entity=loaded)
    finally:
        other.close()
    assert [p["summary"] for p in ledger.task(task).progress] == ["first"]


def test_unknown_task_reference(ledger, plan):
    with pytest.raises(UnknownTask):
        ledger.find_task("768/QĐ-UBND#9.9")
