"""Processes the projection tests start: ``python -m tests.behaviour.projection_scripts ...``

* ``crash URL PAGE_SIZE N``  fold projections page by page and die (os._exit, no cleanup, as
  a kill -9 would) inside the N-th page's transaction, after its rows are written and
  before it commits.
* ``writer URL STOP_FILE``   keep recording progress reports on the 768 plan's tasks until
  STOP_FILE exists; prints how many commands it stored.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from domain.application import Ledger
from domain.errors import DomainError
from domain.ids import task_id
from projections.runner import Runner
from tests.behaviour.helpers import agency


def crash(url: str, page_size: int, crash_on_page: int) -> None:
    pages = 0

    def die_before_commit(names, first, last) -> None:
        nonlocal pages
        pages += 1
        if pages == crash_on_page:
            sys.stdout.write(f"dying inside the page {first}-{last}\n")
            sys.stdout.flush()
            os._exit(137)

    ledger = Ledger(url)
    Runner(ledger, page_size=page_size, before_commit=die_before_commit).catch_up()
    sys.stdout.write("finished without dying\n")


def writer(url: str, stop_file: str) -> None:
    ledger = Ledger(url)
    plan = ledger.find_directive("768/QĐ-UBND")
    leads = {}
    for ordinal in plan.task_ordinals:
        task = ledger.task(task_id(plan.id, ordinal))
        if task.deadline.kind.value == "recurring" and not task.lead.startswith("QNG-G-"):
            leads[task.id] = task.lead
    written = 0
    while not Path(stop_file).exists():
        for tid, lead in leads.items():
            try:
                ledger.report_progress(agency(lead), tid, summary=f"Tiến độ lần {written}",
                                       occurrence="2025")
                written += 1
            except DomainError:
                pass
            if Path(stop_file).exists():
                break
        time.sleep(0.01)
    ledger.close()
    sys.stdout.write(f"{written}\n")


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "crash":
        crash(args[0], int(args[1]), int(args[2]))
    elif command == "writer":
        writer(args[0], args[1])
    else:
        raise SystemExit(f"unknown command {command}")
