"""Processes starting together against a fresh PostgreSQL schema do not race on DDL."""

from __future__ import annotations

import threading

from domain.application import Ledger
from tests.behaviour.helpers import import_plan


def test_ledgers_created_at_the_same_moment_all_start(store_url, clock):
    errors, ledgers = [], []
    barrier = threading.Barrier(4)

    def start():
        try:
            barrier.wait()
            ledgers.append(Ledger(store_url, clock=clock))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        import_plan(ledgers[0])
        assert ledgers[-1].find_directive("768/QĐ-UBND").issued_on.year == 2021
    finally:
        for ledger in ledgers:
            ledger.close()
