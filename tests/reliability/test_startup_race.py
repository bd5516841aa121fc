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


@pytest.mark.postgres
def test_a_database_gone_while_the_tables_are_created_reads_as_the_store_s_error(pg_schema_url):
    """The lock's own connection dies (here: terminated, as when PostgreSQL stops) while the
    tables are being created: the caller gets the creation's error, of the library's family
    (what `ledger worker` waits out and the CLI prints in one line), not psycopg's from
    releasing the lock on a dead connection."""
    import psycopg
    from eventsourcing.persistence import OperationalError

    from domain.persistence.schema_lock import _lock_key, schema_lock
    from domain.persistence.url import parse_store_url
    from tests.conftest import PG_URL

    store = parse_store_url(pg_schema_url)
    key = _lock_key(store.env["POSTGRES_SCHEMA"]) & (2**64 - 1)  # as pg_locks shows it
    creating = OperationalError("the tables' creation failed")
    with pytest.raises(OperationalError) as raised:
        with schema_lock(store):
            with psycopg.connect(PG_URL, autocommit=True) as other:
                killed = other.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = "
                    "'advisory' AND granted AND classid = %s AND objid = %s",
                    (key >> 32, key & (2**32 - 1))).fetchall()
            assert killed == [(True,)]
            raise creating
    assert raised.value is creating
