"""Our application recorders: the library's, plus hooks that run inside the insert
transaction.

``app.save(..., after_insert=[hook, ...])`` calls each ``hook(tx, notification_ids)`` after
the events are inserted and before the transaction commits, with the events table still
locked (PostgreSQL) or the write lock held (SQLite). Whatever a hook writes commits or
rolls back together with the events: the hash chain (DESIGN §6) and idempotency records
use this, so neither can disagree with the journal after a crash.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from eventsourcing.persistence import (
    InterfaceError,
    OperationalError,
    ProgrammingError,
    StoredEvent,
)
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder
from eventsourcing.utils import retry
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier


class Tx:
    """A cursor inside the insert transaction, with one placeholder style (%s) for both
    dialects and rows returned as tuples. ``stored_events`` are the rows just inserted, in
    the order of the positions given to the hooks (the hash chain hashes them as stored)."""

    def __init__(self, cursor: Any, dialect: str,
                 stored_events: Sequence[StoredEvent] | None = None) -> None:
        self.cursor = cursor
        self.dialect = dialect
        self.stored_events = stored_events

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        if self.dialect == "sqlite":
            sql = sql.replace("%s", "?")
        self.cursor.execute(sql, params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if self.dialect == "sqlite":
            self.cursor.executemany(sql.replace("%s", "?"), rows)
        else:
            self.cursor.executemany(sql, rows)

    def fetchone(self) -> tuple[Any, ...] | None:
        row = self.cursor.fetchone()
        if row is None:
            return None
        return tuple(row.values()) if isinstance(row, dict) else tuple(row)

    def fetchall(self) -> list[tuple[Any, ...]]:
        return [
            tuple(r.values()) if isinstance(r, dict) else tuple(r) for r in self.cursor.fetchall()
        ]


AfterInsert = Callable[[Tx, Sequence[int]], None]


def _run_hooks(tx: Tx, ids: Sequence[int] | None, kwargs: dict[str, Any]) -> None:
    hooks: Sequence[AfterInsert] = kwargs.get("after_insert") or ()
    for hook in hooks:
        hook(tx, list(ids or ()))


class LedgerSQLiteRecorder(SQLiteApplicationRecorder):
    def _insert_events(self, c, stored_events, **kwargs: Any):
        ids = super()._insert_events(c, stored_events, **kwargs)
        _run_hooks(Tx(c, "sqlite", stored_events), ids, kwargs)
        return ids


class LedgerPostgresRecorder(PostgresApplicationRecorder):
    """Like the library's recorder, except that an exception anywhere inside the insert
    (a hook included) rolls the whole transaction back. The library's version catches
    exceptions inside the transaction block to keep psycopg's pipeline quiet, which would
    commit the events if a hook failed after the insert."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Four plain arrays, sent in binary, instead of the library's array of composite
        # values: psycopg escapes each composite (and each text array element) with regular
        # expressions in Python, which was a fifth of a bulk import's time.
        self._insert_arrays_statement = SQL(
            "INSERT INTO {schema}.{table} (originator_id, originator_version, topic, state) "
            "SELECT * FROM unnest(%b::{id_type}[], %b::bigint[], %b::text[], %b::bytea[]) "
            "RETURNING notification_id"
        ).format(
            schema=Identifier(self.datastore.schema),
            table=Identifier(self.events_table_name),
            id_type=SQL(self.datastore.originator_id_type),
        )

    def _insert_stored_events(self, curs: Any, stored_events: Sequence[StoredEvent],
                              **kwargs: Any) -> None:
        self._lock_table(curs)
        self._notify_channel(curs)
        curs.execute(
            self._insert_arrays_statement,
            ([s.originator_id for s in stored_events],
             [s.originator_version for s in stored_events],
             [s.topic for s in stored_events],
             [s.state for s in stored_events]),
            prepare=True,
        )

    def _fetch_ids_after_insert_events(self, curs: Any, stored_events: Sequence[StoredEvent],
                                       **kwargs: Any) -> Sequence[int] | None:
        ids = [row[0] for row in curs.fetchall()]
        if len(ids) != len(stored_events):
            raise ProgrammingError(f"Couldn't get all notification IDs (got {len(ids)}, "
                                   f"expected {len(stored_events)})")
        return ids

    def create_table(self) -> None:
        """Create the schema if missing (the library assumes it exists; a fresh database, as
        in the compose deployment, has only ``public``), then the library's tables. Processes
        starting together are serialised by the Ledger (persistence.schema_lock)."""
        schema = self.datastore.schema
        if schema != "public":
            with self.datastore.transaction(commit=True) as curs:
                curs.execute(SQL("CREATE SCHEMA IF NOT EXISTS {}").format(Identifier(schema)))
        super().create_table()

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        if not stored_events:
            return []
        with self.datastore.get_connection() as conn:
            # Tuple rows: the library's dict rows cost a dict per inserted event just to read
            # its position back (a tenth of a bulk import); Tx gives the hooks tuples anyway.
            with conn.pipeline() as pipeline, conn.transaction(), \
                    conn.cursor(row_factory=tuple_row) as curs:
                self._insert_stored_events(curs, stored_events, **kwargs)
                # Sync now, so a uniqueness violation (a concurrent write, a duplicate
                # directive) surfaces here as IntegrityError and the hooks never run.
                pipeline.sync()
                ids = self._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
                _run_hooks(Tx(curs, "postgres", stored_events), ids, kwargs)
        return ids
