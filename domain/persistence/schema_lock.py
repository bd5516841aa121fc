"""Serialise table creation across processes on PostgreSQL.

Two processes creating the same tables at the same moment (an API and a worker starting
together against a fresh schema) make PostgreSQL fail with "tuple concurrently updated" or
a duplicate key in pg_type, even with IF NOT EXISTS. Holding a session advisory lock, keyed
on the schema, around table creation makes the second process wait and then find the
tables there. SQLite needs nothing: its write lock already serialises DDL.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

from domain.persistence.url import StoreConfig


def _lock_key(schema: str) -> int:
    digest = hashlib.sha256(f"chidao-ledger:ddl:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def schema_lock(store: StoreConfig) -> Iterator[None]:
    if store.dialect != "postgres":
        yield
        return
    import psycopg

    env = store.env
    conn = psycopg.connect(
        dbname=env["POSTGRES_DBNAME"], host=env["POSTGRES_HOST"], port=env["POSTGRES_PORT"],
        user=env["POSTGRES_USER"], password=env["POSTGRES_PASSWORD"] or None,
        connect_timeout=int(env.get("POSTGRES_CONNECT_TIMEOUT") or 5), autocommit=True,
    )
    try:
        key = _lock_key(env.get("POSTGRES_SCHEMA") or "public")
        conn.execute("SELECT pg_advisory_lock(%s)", (key,))
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
    finally:
        conn.close()
