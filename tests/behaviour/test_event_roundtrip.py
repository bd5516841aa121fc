"""Every event type of the catalogue is stored and read back intact, on both stores."""

from __future__ import annotations

from datetime import date

from domain.agency import Agency, AgencyLevel
from domain.application import Ledger, read_journal
from domain.directive import Directive
from domain.directive_index import DirectiveNumber
from domain.ids import task_id
from domain.reference import AgencyRecord
from domain.specs import TaskSpec
from domain.task import Task
from tests.behaviour.helpers import OFFICE, OPERATOR, agency, import_plan

CATALOGUE = {
    f"{cls.__name__}.{name}"
    for cls in (Agency, Directive, Task, DirectiveNumber)
    for name, value in vars(cls).items()
    if isinstance(value, type) and issubclass(value, cls.Event) and name not in ("Event", "Created")
}


def exercise_every_event(ledger: Ledger, clock) -> None:
    import_plan(ledger)
    d = ledger.find_directive("768/QĐ-UBND")
    snv = agency("QNG-SNV")
    # Agency events.
    clock.set("2021-09-01 08:00")
    ledger.appoint_head(OPERATOR, "QNG-SNV", "Nguyễn Văn An", "Giám đốc Sở", date(2020, 1, 1))
    ledger.record_head_left(OPERATOR, "QNG-SNV", "Nguyễn Văn An", date(2021, 8, 31))
    ledger.appoint_head(OPERATOR, "QNG-SNV", "Trần Thị Bình", "Phó Giám đốc phụ trách",
                        date(2021, 9, 1), acting=True)
    ledger.rename_agency(OPERATOR, "QNG-SKHCN", "Sở Khoa học, Công nghệ và Đổi mới",
                         date(2021, 9, 1))
    ledger.register_agency(OPERATOR, AgencyRecord("QNG-TEST", "Cơ quan thử",
                                                  AgencyLevel.PROVINCIAL))
    ledger.merge_agency(OPERATOR, "QNG-TEST", "QNG-SNV", date(2021, 9, 1))
    ledger.register_agency(OPERATOR, AgencyRecord("QNG-TEST2", "Cơ quan thử 2",
                                                  AgencyLevel.PROVINCIAL))
    ledger.dissolve_agency(OPERATOR, "QNG-TEST2", date(2021, 9, 1))
    # Task events.
    t11 = task_id(d.id, "1.1")  # recurring, lead QNG-SNV
    t36 = task_id(d.id, "4.2")  # conditional
    t13 = task_id(d.id, "1.3")  # Quý II năm 2022, lead QNG-SNV
    ledger.report_progress(snv, t13, summary="Đã xây dựng dự thảo Đề án", percent=40)
    ledger.request_extension(snv, t13, requested_due=date(2022, 9, 30), reason="Chờ hướng dẫn")
    ledger.grant_extension(OFFICE, t13, note="Đồng ý")
    ledger.request_extension(snv, t13, requested_due=date(2022, 12, 31), reason="Lần 2")
    ledger.reject_extension(OFFICE, t13, reason="Không gia hạn thêm")
    clock.set("2021-12-20 09:00")
    ledger.report_completion(snv, t11, occurrence="2021", completed_on=date(2021, 12, 20),
                             document="2841/QĐ-UBND", summary="Kế hoạch CCHC năm 2022")
    ledger.reject_completion(OFFICE, t11, occurrence="2021", reason="Thiếu chỉ tiêu")
    ledger.report_completion(snv, t11, occurrence="2021", completed_on=date(2021, 12, 20),
                             summary="Bổ sung chỉ tiêu")
    ledger.confirm_completion(OFFICE, t11, occurrence="2021")
    ledger.reopen_task(OFFICE, t11, occurrence="2021", reason="Phát hiện sai sót")
    ledger.trigger_deadline(OFFICE, t36, due_on=date(2022, 6, 30),
                            basis="Hướng dẫn của Bộ Nội vụ")
    ledger.reassign_task(OFFICE, t36, lead="QNG-SNV", coordinating=["QNG-STP"],
                         reason="Phân công lại")
    ledger.cancel_task(OFFICE, t36, reason="Không còn phù hợp")
    ledger.reopen_task(OFFICE, t36, reason="Khôi phục")
    # Directive events.
    ledger.amend_directive(
        OFFICE, d.id, amended_by="900/QĐ-UBND", title="Kế hoạch CCHC giai đoạn 2021-2025",
        add_tasks=[TaskSpec(ordinal="8.1", content="Nhiệm vụ bổ sung", lead="QNG-SNV",
                            deadline="Năm 2022")],
    )
    ledger.revoke_directive(OFFICE, d.id, revoked_on=date(2021, 12, 31),
                            reason="Thay thế bằng kế hoạch mới")


def test_every_event_type_round_trips_through_the_store(ledger, store_url, clock):
    exercise_every_event(ledger, clock)
    entries = read_journal(ledger, 0, 10_000)
    assert {e.event_type for e in entries} == CATALOGUE
    for entry in entries:  # metadata on every event
        assert entry.meta["actor"] and entry.meta["actor_role"] and entry.meta["correlation_id"]
        assert entry.recorded_at.tzinfo is not None

    # A second application with a cold cache reads back the same aggregates.
    fresh = Ledger(store_url, clock=clock)
    try:
        ids = {e.entity_id for e in entries}
        for aggregate_id in ids:
            assert fresh.repository.get(aggregate_id) == ledger.repository.get(aggregate_id)
        d = fresh.find_directive("768/QĐ-UBND")
        assert d.revoked_on == date(2021, 12, 31)
        assert d.task_ordinals[-1] == "8.1"
        t13 = fresh.task(task_id(d.id, "1.3"))
        occ = t13.occurrence("once")
        assert (occ.original_due, occ.due_on, occ.lateness_due) == (
            date(2022, 6, 30), date(2022, 9, 30), date(2022, 9, 30))
        assert isinstance(occ.original_due, date)
        assert [e.rejected for e in occ.extensions] == [False, True]
        head = fresh.agency("QNG-SNV").head_on(date(2021, 10, 1))
        assert head.person == "Trần Thị Bình" and head.acting
        assert fresh.responsible_agency("QNG-TEST", date(2021, 9, 2)) == "QNG-SNV"
        assert fresh.responsible_agency("QNG-TEST", date(2021, 8, 31)) == "QNG-TEST"
    finally:
        fresh.close()



def test_every_event_type_is_stored_in_the_librarys_own_json(ledger, clock, monkeypatch):
    """The ledger writes with orjson (FastJSONTranscoder), but what it stores is what the
    library's own transcoder writes for the same state, and both read it back alike: a
    store written before, or read by the plain library, is the same store (and the hash
    chain, which covers these bytes, is unchanged)."""
    from tests.unit.test_fast_json import LIBRARY, typed_tree

    fast = ledger.mapper.transcoder
    written: list[tuple[bytes, bytes]] = []

    def encode_and_compare(state):
        data = fast_encode(state)
        written.append((data, LIBRARY.encode(state)))
        return data

    fast_encode = fast.encode
    monkeypatch.setattr(fast, "encode", encode_and_compare)
    exercise_every_event(ledger, clock)
    assert len(written) > 100
    assert all(ours == library for ours, library in written)

    notifications = ledger.recorder.select_notifications(start=0, limit=10_000)
    assert CATALOGUE <= {n.topic.rpartition(":")[2] for n in notifications}
    assert {bytes(n.state) for n in notifications} <= {ours for ours, _ in written}
    for n in notifications:
        assert typed_tree(fast.decode(n.state)) == typed_tree(LIBRARY.decode(n.state)), n.topic
