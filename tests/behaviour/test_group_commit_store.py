"""Many request threads writing through one group-committing Ledger, on both stores."""

from __future__ import annotations

import threading

from domain.application import Ledger, read_journal
from domain.errors import ConcurrentWrite
from domain.ids import task_id
from tests.behaviour.helpers import agency, import_plan


def test_concurrent_commands_all_land_with_their_own_positions(store_url, clock):
    ledger = Ledger(store_url, clock=clock, group_commit=True)
    try:
        import_plan(ledger)
        directive = ledger.find_directive("768/QĐ-UBND")
        head = ledger.recorder.max_notification_id()
        targets = [(task_id(directive.id, f"6.{n}"), "QNG-STC") for n in range(1, 11)]
        recurring = {t for t, _ in targets if ledger.task(t).deadline.kind == "recurring"}
        receipts, errors = {}, []

        def write(task, lead, n):
            try:
                receipts[(task, n)] = ledger.report_progress(
                    agency(lead), task, summary=f"báo cáo {n}",
                    occurrence="2021" if task in recurring else None)
            except Exception as exc:
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(task, lead, n))
                   for task, lead in targets for n in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # Each acknowledged command's positions hold its own event, and nothing else landed.
        journal = {e.position: e for e in read_journal(ledger, head, 1000)}
        assert len(journal) == len(receipts)
        for (task, n), receipt in receipts.items():
            [position] = receipt.positions
            assert journal[position].entity_id == task
            assert journal[position].data["summary"] == f"báo cáo {n}"
            assert journal[position].version == receipt.version
        # Writers of the same task either landed or were told of the conflict.
        assert all(isinstance(e, ConcurrentWrite) for e in errors), errors
        assert len(receipts) + len(errors) == len(threads)
        assert len(receipts) >= len(targets)  # at least the first writer of each task
        for task, _ in targets:
            versions = sorted(r.version for (t, _), r in receipts.items() if t == task)
            assert versions == list(range(2, 2 + len(versions)))  # contiguous, no lost update
    finally:
        ledger.close()
