"""Several processes starting at once on a fresh schema (`ledger serve --workers 4`, the
compose deployment) each create the tables. Concurrent DDL failed ("tuple concurrently
updated", duplicate pg_type rows) and took a worker down; it is now serialised by an
advisory lock. Threads stand in for processes: each Ledger has its own connections."""

from __future__ import annotations

import threading

import pytest


@pytest.mark.postgres
def test_ledgers_starting_together_on_a_fresh_schema_all_start():
    from domain.application import Ledger
    from drills.common import fresh_schema
    from service.storage import ServiceTables
    from tests.conftest import PG_URL, require_postgres

    require_postgres()
    errors: list[str] = []
    for _ in range(3):
        url, drop = fresh_schema(PG_URL, "startup")
        barrier = threading.Barrier(6)

        def start(url=url, barrier=barrier) -> None:
            barrier.wait()
            try:
                ledger = Ledger(url)
                try:
                    ServiceTables(ledger).create()
                    assert ledger.recorder.max_notification_id() in (None, 0)
                finally:
                    ledger.close()
            except Exception as exc:
                errors.append(repr(exc)[:200])

        threads = [threading.Thread(target=start) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        drop()
    assert errors == []
