"""Events are never rewritten: an event stored under an older schema still loads.

Task.ProgressReported gained ``obstacles`` in version 2. A version-1 event (no
``class_version`` in its stored state, no ``obstacles``) written by an older release is
upcast on read by ``upcast_v1_v2``; new events are stored as version 2.
"""

from __future__ import annotations

import json
from datetime import date

from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic

from domain.ids import task_id
from domain.task import Task
from tests.behaviour.helpers import agency, import_plan


def test_a_version_1_progress_report_still_loads(ledger, clock):
    import_plan(ledger)
    directive = ledger.find_directive("768/QĐ-UBND")
    the_task = task_id(directive.id, "1.3")
    # The stored form a version-1 release wrote (as the library's JSON transcoder writes it).
    v1_state = {
        "timestamp": {"_type_": "datetime_iso", "_data_": clock().isoformat()},
        "meta": {"actor": "token:old", "actor_role": "agency", "actor_agency": "QNG-SNV",
                 "correlation_id": "c0ffee", "causation_id": None, "source_document": None},
        "occurrence": "once",
        "reported_on": {"_type_": "date_iso", "_data_": "2021-08-26"},
        "percent": 30,
        "summary": "Báo cáo theo mẫu cũ",
        "reporter": "QNG-SNV",
    }
    ledger.recorder.insert_events([StoredEvent(
        originator_id=the_task, originator_version=2,
        topic=get_topic(Task.ProgressReported),
        state=json.dumps(v1_state, ensure_ascii=False).encode("utf-8"),
    )])
    task = ledger.task(the_task)
    assert task.version == 2
    assert task.progress == [{"occurrence": "once", "reported_on": date(2021, 8, 26),
                              "percent": 30, "summary": "Báo cáo theo mẫu cũ",
                              "reporter": "QNG-SNV", "obstacles": None}]

    # New reports are written as version 2, and both read back side by side.
    clock.advance(days=1)
    ledger.report_progress(agency("QNG-SNV"), the_task, summary="Báo cáo mới", percent=60,
                           obstacles="Chưa có hướng dẫn của Bộ")
    [_, new] = ledger.recorder.select_events(the_task, gt=1)
    assert json.loads(new.state)["class_version"] == 2
    assert [p["obstacles"] for p in ledger.task(the_task).progress] == [
        None, "Chưa có hướng dẫn của Bộ"]
