"""The projections' access to the ledger's own database.

Read-model tables live in the same database (PostgreSQL: the same schema) as the events, so a
page of view updates and its tracking position commit in one transaction. This module gives
the rest of ``projections/`` one placeholder style (``%s``), rows as tuples, schema-qualified
table names and the two kinds of transaction it needs, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

from eventsourcing.persistence import OperationalError, PersistenceError
from psycopg import Pipeline
from psycopg.rows import tuple_row

LONG_READ_IDLE_SECONDS = 300


class Cursor:
    """A cursor with ``%s`` placeholders on both stores and tuple rows."""

    def __init__(self, raw: Any, dialect: str) -> None:
        self.raw = raw
        self.dialect = dialect
        if dialect == "postgres":
            # The library's connections make dict rows; building (and then unpacking) a
            # dict per row was a tenth of a large read-model query.
            raw.row_factory = tuple_row

    def _sql(self, sql: str) -> str:
        return sql.replace("%s", "?") if self.dialect == "sqlite" else sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        self.raw.execute(self._sql(sql), tuple(params))
        return self

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.raw.executemany(self._sql(sql), [tuple(r) for r in rows])

    @property
    def rowcount(self) -> int:
        return self.raw.rowcount

    @staticmethod
    def _row(row: Any) -> tuple[Any, ...]:
        return tuple(row.values()) if isinstance(row, dict) else tuple(row)

    def fetchone(self) -> tuple[Any, ...] | None:
        row = self.raw.fetchone()
        return None if row is None else self._row(row)

    def fetchall(self) -> list[tuple[Any, ...]]:
        rows = self.raw.fetchall()
        if self.dialect == "postgres":
            return rows
        return [self._row(r) for r in rows]

    @contextmanager
    def ahead(self, sql: str, params: Sequence[Any] = ()
              ) -> Iterator[Callable[[], list[tuple[Any, ...]]]]:
        """Send a statement now and fetch its rows later, inside the block, with the
        function it yields: PostgreSQL executes it while the caller works in Python
        meanwhile (pipeline mode; the server runs on the other core). A query that judges
        thousands of rows hides a statement's time behind judging the rows it already has.
        SQLite (in process) runs it at once. No other statement may run in the block."""
        with self.ahead_all([(sql, params)]) as (rows,):
            yield rows

    @contextmanager
    def ahead_all(self, statements: Sequence[tuple[str, Sequence[Any]]]
                  ) -> Iterator[list[Callable[[], list[tuple[Any, ...]]]]]:
        """``ahead`` of several statements at once, a fetch function each (fetched in their
        order): the server runs them back to back while the caller parses the first rows
        to arrive, or frees what it no longer needs."""
        if self.dialect != "postgres" or not Pipeline.is_supported():
            answers = [self.execute(sql, params).fetchall() for sql, params in statements]
            yield [(lambda rows=rows: rows) for rows in answers]
            return
        conn = self.raw.connection
        with conn.pipeline(), ExitStack() as cursors:
            fetchers = []
            for sql, params in statements:
                raw = cursors.enter_context(conn.cursor(row_factory=tuple_row))
                raw.execute(sql, tuple(params))
                fetchers.append(raw.fetchall)
            yield fetchers


class Db:
    """The ledger's database, seen by the projections."""

    def __init__(self, ledger: Any) -> None:
        self.ledger = ledger
        self.dialect: str = ledger.store.dialect
        self.recorder = ledger.recorder
        self.datastore = ledger.recorder.datastore
        self.schema: str | None = self.datastore.schema if self.dialect == "postgres" else None
        self.events_table = self.name(self.recorder.events_table_name)
        self.position_column = "notification_id" if self.dialect == "postgres" else "rowid"
        # The channel the library NOTIFYs on after each insert (postgres.py: table name).
        self.channel = self.recorder.events_table_name.replace(".", "_")

    # -- names and types ---------------------------------------------------------------------

    def name(self, table: str) -> str:
        if not table.replace("_", "").isalnum():
            raise ValueError(f"unsafe table name {table!r}")
        return f'"{self.schema}"."{table}"' if self.schema else f'"{table}"'

    @property
    def bigint(self) -> str:
        return "BIGINT" if self.dialect == "postgres" else "INTEGER"

    def lock_key(self, purpose: str) -> int:
        """A 63-bit advisory lock key for a purpose, distinct per schema."""
        digest = hashlib.sha256(f"{self.schema}:{purpose}".encode()).digest()
        return int.from_bytes(digest[:8], "big") >> 1

    # -- transactions ------------------------------------------------------------------------

    @contextmanager
    def write(self) -> Iterator[Cursor]:
        """One read-write transaction, committed when the block ends without an exception.

        SQLite: ``BEGIN IMMEDIATE`` takes the database's single write lock up front, so the
        transaction never has to upgrade a read snapshot (which fails at once when another
        process has written meanwhile)."""
        if self.dialect == "postgres":
            with self.datastore.transaction(commit=True) as raw:
                yield Cursor(raw, self.dialect)
            return
        with self.datastore.get_connection(commit=True) as conn:
            cursor = conn.cursor()
            try:
                cursor.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise OperationalError(str(exc)) from exc
            try:
                yield Cursor(cursor.sqlite_cursor, self.dialect)
            except sqlite3.Error as exc:
                conn.rollback()
                raise OperationalError(str(exc)) from exc
            except BaseException:
                conn.rollback()
                raise
            try:
                conn.commit()
            except sqlite3.Error as exc:
                conn.rollback()
                raise OperationalError(str(exc)) from exc

    @contextmanager
    def read(self, *, long: bool = False) -> Iterator[Cursor]:
        """One read-only transaction (SQLite: one consistent snapshot).

        ``long``: the caller works in Python between statements for longer than the store's
        idle-in-transaction timeout allows (the library's default is 5 s, which is right
        for writes: a write transaction left idle holds the events table's lock). A read-model
        query judging every obligation of a 1M-event ledger needs more; a read-only
        transaction idle that long holds no lock."""
        try:
            with self.datastore.transaction(commit=False) as raw:
                if long and self.dialect == "postgres":
                    raw.execute(f"SET LOCAL idle_in_transaction_session_timeout = "
                                f"'{LONG_READ_IDLE_SECONDS}s'")
                yield Cursor(raw, self.dialect)
        except sqlite3.Error as exc:
            raise PersistenceError(str(exc)) from exc

    @contextmanager
    def statement(self) -> Iterator[Cursor]:
        """A cursor for ONE read statement, outside an explicit transaction: on PostgreSQL
        the library's connections are in autocommit, so the statement is one round trip
        instead of three (BEGIN, SELECT, ROLLBACK). A single statement sees one consistent
        snapshot by itself; two statements through this cursor would not share one (use
        ``read``). The cached HTTP answers check the projection's freshness this way on
        every request."""
        if self.dialect != "postgres":
            with self.read() as cur:
                yield cur
            return
        with self.datastore.get_connection() as conn:
            assert conn.autocommit  # else the statement would open a transaction left idle
            with conn.cursor() as raw:
                yield Cursor(raw, self.dialect)

    @contextmanager
    def maintenance(self) -> Iterator[Cursor]:
        """PostgreSQL: a cursor in autocommit, each statement its own transaction, for the
        statements that cannot run inside one (VACUUM) and the long ones that need not
        (CLUSTER, CREATE INDEX, ANALYZE on a rebuilt copy no reader sees yet)."""
        if self.dialect != "postgres":
            raise NotImplementedError("maintenance statements are PostgreSQL's")
        with self.datastore.get_connection() as conn:
            assert conn.autocommit
            with conn.cursor() as raw:
                yield Cursor(raw, self.dialect)

    def table_names(self, cur: Cursor) -> list[str]:
        """Every table of the ledger's schema (PostgreSQL) or database (SQLite)."""
        if self.dialect == "postgres":
            cur.execute("SELECT table_name FROM information_schema.tables WHERE "
                        "table_schema=%s", (self.schema,))
        else:
            cur.execute("SELECT name FROM sqlite_master WHERE type='table'")
        return [row[0] for row in cur.fetchall()]

    def table_exists(self, cur: Cursor, table: str) -> bool:
        if self.dialect == "postgres":
            cur.execute("SELECT 1 FROM information_schema.tables WHERE table_schema=%s AND "
                        "table_name=%s", (self.schema, table))
        else:
            cur.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=%s", (table,))
        return cur.fetchone() is not None

    def head_position(self) -> int:
        return self.recorder.max_notification_id() or 0
