"""Serialise table creation across processes on PostgreSQL.

Two processes creating the same tables at the same moment (an API and a worker starting
together against a fresh schema) make PostgreSQL fail with "tuple concurrently updated" or
a duplicate key in pg_type, even with IF NOT EXISTS. Holding a session advisory lock, keyed
on the schema, around table creation makes the second process wait and then find the
tables there. On SQLite, switching a new file to WAL mode and creating tables from several
connections at once can fail with "database is locked" at once (no busy wait applies), so
an exclusive lock on a file beside the database plays the same part.

A database that cannot be reached raises the eventsourcing library's OperationalError, as
the library's own connections do, so every caller sees one family of store errors (the CLI
turns it into one line, ``ledger worker`` waits it out).
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
def _file_lock(path: str) -> Iterator[None]:
    import fcntl

    with open(path, "a+b") as handle:  # flock: per open file, so threads exclude each other too
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def schema_lock(store: StoreConfig) -> Iterator[None]:
    if store.dialect != "postgres":
        name = store.env.get("SQLITE_DBNAME", "")
        if not name or ":memory:" in name or name.startswith("file:"):
            yield
        else:
            with _file_lock(f"{name}.ddl-lock"):
                yield
        return
    import psycopg

    env = store.env
    key = _lock_key(env.get("POSTGRES_SCHEMA") or "public")
    with _as_store_error():
        conn = psycopg.connect(
            dbname=env["POSTGRES_DBNAME"], host=env["POSTGRES_HOST"], port=env["POSTGRES_PORT"],
            user=env["POSTGRES_USER"], password=env["POSTGRES_PASSWORD"] or None,
            connect_timeout=int(env.get("POSTGRES_CONNECT_TIMEOUT") or 5), autocommit=True,
        )
    try:
        with _as_store_error():  # (the database may go away just then)
            conn.execute("SELECT pg_advisory_lock(%s)", (key,))
        try:
            yield
        finally:
            try:
                conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
            except psycopg.OperationalError:
                # The database went away while the tables were being created: the session's
                # end released the lock, and the error to report is the creation's.
                pass
    finally:
        conn.close()


@contextmanager
def _as_store_error() -> Iterator[None]:
    """psycopg's connection errors as the eventsourcing library's OperationalError."""
    import psycopg
    from eventsourcing.persistence import OperationalError

    try:
        yield
    except psycopg.OperationalError as exc:
        raise OperationalError(" ".join(str(exc).split())) from exc
