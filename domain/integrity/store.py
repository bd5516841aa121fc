"""The chain and checkpoint tables, the in-transaction hook that extends the chain, and fast
readers over a consistent snapshot of events, chain and checkpoints — for both stores.

Tables (in the events' own schema or database):

    ledger_chain(position PK, originator_id, originator_version, hash)
        one row per stored event: its global position, its identity (for telling reordered,
        deleted and inserted rows apart), and hash_n of the chain (domain.integrity.canonical)
    ledger_checkpoints(number PK, position, head, signed_at, key_id, public_key, signature)
        signed statements "at ``signed_at`` the chain head at ``position`` was ``head``"

The hook runs inside the transaction that inserts the events (PostgreSQL: with the events
table locked EXCLUSIVE; SQLite: with the write lock held), so the head it reads cannot
move under it and the chain commits or rolls back with the events: there is no sealing
delay between an event and its chain entry. Per save it costs one indexed read of the head
and one batched insert.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from domain.integrity.canonical import GENESIS, chain_hash, originator_id_text
from domain.integrity.errors import IntegrityFailure
from domain.persistence.recorders import Tx

CHAIN_TABLE = "ledger_chain"
CHECKPOINT_TABLE = "ledger_checkpoints"
PAGE = 10_000


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True, slots=True)
class Checkpoint:
    number: int
    position: int
    head: bytes
    signed_at: str  # ISO 8601, exactly as signed
    key_id: str
    public_key: bytes  # 32 raw bytes
    signature: bytes

    def as_json(self) -> dict[str, Any]:
        return {
            "number": self.number, "position": self.position, "head": self.head.hex(),
            "signed_at": self.signed_at, "key_id": self.key_id,
            "public_key": self.public_key.hex(), "signature": self.signature.hex(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Checkpoint:
        return cls(
            number=int(data["number"]), position=int(data["position"]),
            head=bytes.fromhex(data["head"]), signed_at=str(data["signed_at"]),
            key_id=str(data["key_id"]), public_key=bytes.fromhex(data["public_key"]),
            signature=bytes.fromhex(data["signature"]),
        )


def _checkpoint(row: Sequence[Any]) -> Checkpoint:
    return Checkpoint(int(row[0]), int(row[1]), bytes(row[2]), str(row[3]), str(row[4]),
                      bytes(row[5]), bytes(row[6]))


_first = itemgetter(0)
_CHECKPOINT_COLUMNS = "number, position, head, signed_at, key_id, public_key, signature"


class ChainStore:
    """Where the events, the chain and the checkpoints of one ledger live, and how to read
    and write them in either dialect."""

    def __init__(self, recorder: Any, dialect: str) -> None:
        self.dialect = dialect
        self.datastore = recorder.datastore
        if dialect == "postgres":
            schema = _quote(self.datastore.schema)
            self.events = f"{schema}.{_quote(recorder.events_table_name)}"
            self.position = "notification_id"
            self.chain = f"{schema}.{_quote(CHAIN_TABLE)}"
            self.checkpoints = f"{schema}.{_quote(CHECKPOINT_TABLE)}"
            blob, integer = "bytea", "bigint"
        else:
            self.events = _quote(recorder.events_table_name)
            self.position = "rowid"
            self.chain = _quote(CHAIN_TABLE)
            self.checkpoints = _quote(CHECKPOINT_TABLE)
            blob, integer = "BLOB", "INTEGER"
        self.ddl = [
            f"CREATE TABLE IF NOT EXISTS {self.chain} ("
            f"position {integer} PRIMARY KEY, originator_id text NOT NULL, "
            f"originator_version {integer} NOT NULL, hash {blob} NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS {self.checkpoints} ("
            f"number {integer} PRIMARY KEY, position {integer} NOT NULL, head {blob} NOT NULL, "
            f"signed_at text NOT NULL, key_id text NOT NULL, public_key {blob} NOT NULL, "
            f"signature {blob} NOT NULL)",
        ]
        self._insert_chain = (
            f"INSERT INTO {self.chain} (position, originator_id, originator_version, hash) "
            "VALUES (%s, %s, %s, %s)"
        )
        self._insert_chain_arrays = (
            f"INSERT INTO {self.chain} (position, originator_id, originator_version, hash) "
            "SELECT * FROM unnest(%b::bigint[], %b::text[], %b::bigint[], %b::bytea[])"
        )
        self._select_head = (f"SELECT position, hash FROM {self.chain} "
                             "ORDER BY position DESC LIMIT 1")
        self._select_events = (
            f"SELECT {self.position}, originator_id, originator_version, topic, state "
            f"FROM {self.events} WHERE {self.position} >= %s AND {self.position} <= %s "
            f"ORDER BY {self.position} LIMIT %s"
        )

    # -- transactions --------------------------------------------------------------------------

    @contextmanager
    def write(self) -> Iterator[Tx]:
        """A write transaction; on SQLite it takes the write lock at once (BEGIN IMMEDIATE)."""
        if self.dialect == "postgres":
            with self.datastore.transaction(commit=True) as cursor:
                yield Tx(cursor, "postgres")
            return
        with self.datastore.get_connection(commit=True) as conn:
            cursor = conn.cursor()
            cursor.execute("BEGIN IMMEDIATE")
            try:
                yield Tx(cursor, "sqlite")
            except BaseException:
                conn.rollback()
                raise
            conn.commit()

    @contextmanager
    def snapshot(self) -> Iterator[Reader]:
        """One consistent read of events, chain and checkpoints (PostgreSQL: REPEATABLE READ,
        READ ONLY; SQLite: one read transaction, a snapshot in WAL mode)."""
        if self.dialect == "postgres":
            from psycopg.rows import tuple_row

            with self.datastore.get_connection() as conn:
                with conn.transaction(force_rollback=True):
                    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    with conn.cursor(row_factory=tuple_row, binary=True) as cursor:
                        reader = Reader(self, cursor)
                        try:
                            yield reader
                        finally:
                            reader.close()
            return
        with self.datastore.get_connection(commit=False) as conn:
            cursor = conn.cursor().sqlite_cursor
            cursor.row_factory = None
            cursor.execute("BEGIN")
            try:
                yield Reader(self, cursor)
            finally:
                conn.rollback()
                cursor.close()

    # -- installation --------------------------------------------------------------------------

    def _exists(self, tx: Tx) -> bool:
        if self.dialect == "postgres":
            tx.execute("SELECT to_regclass(%s) AS a, to_regclass(%s) AS b",
                       (self.chain, self.checkpoints))
            row = tx.fetchone()
            return bool(row and row[0] and row[1])
        tx.execute("SELECT count(*) FROM sqlite_master WHERE type='table' AND name IN (%s, %s)",
                   (CHAIN_TABLE, CHECKPOINT_TABLE))
        row = tx.fetchone()
        return bool(row and row[0] == 2)

    def install(self) -> None:
        """Create the tables if missing. Events stored before the tables existed (a ledger
        from before this feature) are chained in the same transaction: the chain's evidence
        starts when it was installed."""
        with self.datastore.transaction(commit=False) as cursor:
            if self._exists(Tx(cursor, self.dialect)):
                return
        with self.write() as tx:
            if self.dialect == "postgres":
                tx.execute(f"LOCK TABLE {self.events} IN EXCLUSIVE MODE")
                if self._exists(tx):
                    return
            for statement in self.ddl:
                tx.execute(statement)
            self._adopt(tx)

    def _adopt(self, tx: Tx) -> None:
        tx.execute(self._select_head)
        if tx.fetchone() is not None:
            return
        previous, start = GENESIS, 0
        while True:
            tx.execute(self._select_events, (start + 1, 2**62, PAGE))
            rows = tx.fetchall()
            if not rows:
                return
            entries = []
            for position, oid, version, topic, state in rows:
                oid = originator_id_text(oid)
                previous = chain_hash(previous, position, oid, version, topic, state)
                entries.append((position, oid, version, previous))
            self._insert_entries(tx, entries)
            start = rows[-1][0]

    # -- the write path ------------------------------------------------------------------------

    def after_insert(self, tx: Tx, positions: Sequence[int]) -> None:
        """Extend the chain by the events just inserted (in the same transaction)."""
        if not positions:
            return
        tx.execute(self._select_head)
        head = tx.fetchone()
        head_position, previous = (int(head[0]), bytes(head[1])) if head else (0, GENESIS)
        stored = getattr(tx, "stored_events", None)
        if stored is not None and len(stored) == len(positions):
            rows = [(p, originator_id_text(s.originator_id), s.originator_version, s.topic,
                     s.state) for p, s in zip(positions, stored, strict=True)]
            rows.sort(key=lambda r: r[0])
        else:  # a recorder that does not pass the stored events: read them back
            tx.execute(self._select_events, (min(positions), max(positions), len(positions)))
            rows = [(p, originator_id_text(o), v, t, s) for p, o, v, t, s in tx.fetchall()]
        if rows[0][0] <= head_position:
            raise IntegrityFailure(
                f"the chain already ends at position {head_position} but a new event was "
                f"given position {rows[0][0]}: rows were removed from the events table; "
                "run `ledger verify`", field=None,
            )
        entries = []
        for position, oid, version, topic, state in rows:
            previous = chain_hash(previous, position, oid, version, topic, state)
            entries.append((position, oid, version, previous))
        self._insert_entries(tx, entries)

    def _insert_entries(self, tx: Tx, entries: list[tuple[int, str, int, bytes]]) -> None:
        if tx.dialect == "postgres":  # one statement for the batch, not one per row
            positions, oids, versions, hashes = (list(c) for c in zip(*entries, strict=True))
            tx.execute(self._insert_chain_arrays, (positions, oids, versions, hashes))
        else:
            tx.executemany(self._insert_chain, entries)

    def insert_checkpoint(self, tx: Tx, checkpoint: Checkpoint) -> None:
        tx.execute(
            f"INSERT INTO {self.checkpoints} ({_CHECKPOINT_COLUMNS}) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (checkpoint.number, checkpoint.position, checkpoint.head, checkpoint.signed_at,
             checkpoint.key_id, checkpoint.public_key, checkpoint.signature),
        )


class Reader:
    """Reads inside one snapshot, in large pages, as plain tuples."""

    def __init__(self, store: ChainStore, cursor: Any) -> None:
        self.store = store
        self.cursor = cursor
        self._sqlite = store.dialect == "sqlite"
        self._ahead: list[ReadAhead] = []

    def close(self) -> None:
        """Stop the threads reading ahead (before the snapshot's transaction ends)."""
        for ahead in self._ahead:
            ahead.close()
        self._ahead.clear()

    def _read_ahead(self, make: Callable[[Reader], Iterator[list[tuple[Any, ...]]]]
                    ) -> Iterator[list[tuple[Any, ...]]]:
        """``make(reader)``'s pages, read a page or two ahead by a thread of their own on a
        cursor of their own (PostgreSQL), so the database's work and the wait for rows
        overlap the caller's (hashing, in verification); as they are on SQLite.

        Verification reads only the events ahead: on two cores a second thread for the
        chain's small rows cost more in contention for the GIL than its overlap gained
        (1M events, alternating: events ahead 289-302k/s, both 273-289k, chain 267-272k,
        neither 261-263k)."""
        if self._sqlite:
            return make(self)
        cursor = self.cursor.connection.cursor(row_factory=self.cursor.row_factory,
                                               binary=True)
        ahead = ReadAhead(make(Reader(self.store, cursor)), on_close=cursor.close)
        self._ahead.append(ahead)
        return ahead

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if self._sqlite:
            sql = sql.replace("%s", "?")
        self.cursor.execute(sql, params)
        return self.cursor.fetchall()

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        rows = self.rows(sql, params)
        return rows[0] if rows else None

    def _pages(self, table: str, position: str, columns: str, start: int, stop: int | None,
               page: int) -> Iterator[list[tuple[Any, ...]]]:
        """Rows in position order, read by ranges of ``page`` positions: a narrow range on
        the position index is planned well whatever the table's statistics say (a LIMIT
        over an open range was not, on a freshly filled PostgreSQL table). An empty range
        jumps to the next position present, so far-apart positions cost one query."""
        # No ORDER BY: rows come back (nearly) in position order and are sorted here, which
        # costs little, where a server-side sort of a page spilled to disk (work_mem).
        select = (f"SELECT {position}, {columns} FROM {table} "
                  f"WHERE {position} >= %s AND {position} <= %s")
        following = f"SELECT MIN({position}) FROM {table} WHERE {position} > %s"
        if stop is None:
            row = self.one(f"SELECT MAX({position}) FROM {table}")
            if row is None or row[0] is None:
                return
            stop = int(row[0])
        while start <= stop:
            end = min(start + page - 1, stop)
            rows = self.rows(select, (start, end))
            if rows:
                rows.sort(key=_first)
                yield rows
                start = end + 1
                continue
            row = self.one(following, (end,))
            if row is None or row[0] is None:
                return
            start = int(row[0])

    def events(self, start: int = 1, stop: int | None = None, page: int = PAGE, *,
               ahead: bool = False) -> Iterator[list[tuple[int, str, int, str, bytes]]]:
        """Pages of (position, originator id text, version, topic, state) in position order;
        ``ahead``: read by a thread ahead of the caller (``_read_ahead``).

        PostgreSQL's uuid is sent as the hex text ``originator_id_text`` gives (UUID.hex):
        building a Python UUID for every row only to format it again was a fifth of a
        verification."""
        if ahead:
            return self._read_ahead(lambda r: r.events(start, stop, page))
        oid = "originator_id" if self._sqlite else "replace(originator_id::text, '-', '')"
        return self._pages(self.store.events, self.store.position,
                           f"{oid}, originator_version, topic, state", start, stop, page)

    def chain(self, start: int = 1, stop: int | None = None, page: int = PAGE, *,
              ahead: bool = False) -> Iterator[list[tuple[int, str, int, bytes]]]:
        """Pages of (position, originator id text, version, hash) in position order;
        ``ahead`` as for ``events``."""
        if ahead:
            return self._read_ahead(lambda r: r.chain(start, stop, page))
        return self._pages(self.store.chain, "position",
                           "originator_id, originator_version, hash", start, stop, page)

    def checkpoints(self) -> list[Checkpoint]:
        return [_checkpoint(r) for r in self.rows(
            f"SELECT {_CHECKPOINT_COLUMNS} FROM {self.store.checkpoints} ORDER BY number")]

    def latest_checkpoint(self) -> Checkpoint | None:
        row = self.one(f"SELECT {_CHECKPOINT_COLUMNS} FROM {self.store.checkpoints} "
                       "ORDER BY number DESC LIMIT 1")
        return _checkpoint(row) if row else None

    def head(self) -> tuple[int, bytes] | None:
        row = self.one(self.store._select_head)
        return (int(row[0]), bytes(row[1])) if row else None

    def chain_entry_before(self, position: int) -> tuple[int, bytes] | None:
        row = self.one(f"SELECT position, hash FROM {self.store.chain} WHERE position < %s "
                       "ORDER BY position DESC LIMIT 1", (position,))
        return (int(row[0]), bytes(row[1])) if row else None

    def chain_entry(self, position: int) -> tuple[int, str, int, bytes] | None:
        row = self.one(f"SELECT position, originator_id, originator_version, hash FROM "
                       f"{self.store.chain} WHERE position = %s", (position,))
        return (int(row[0]), str(row[1]), int(row[2]), bytes(row[3])) if row else None

    def max_event_position(self) -> int:
        row = self.one(f"SELECT MAX({self.store.position}) FROM {self.store.events}")
        return int(row[0]) if row and row[0] is not None else 0

    def event_count(self) -> int:
        row = self.one(f"SELECT count(*) FROM {self.store.events}")
        return int(row[0]) if row else 0

    # -- lookups for telling tampering apart (only used once something is wrong) -------------

    def stored_at(self, originator_id: str, version: int) -> int | None:
        """Where the events table holds this event now (by its primary key)."""
        key: Any = originator_id
        if not self._sqlite:
            from uuid import UUID

            try:
                key = UUID(hex=originator_id)
            except ValueError:
                return None
        row = self.one(f"SELECT {self.store.position} FROM {self.store.events} "
                       "WHERE originator_id = %s AND originator_version = %s", (key, version))
        return int(row[0]) if row else None

    def chained_at(self, originator_id: str, version: int) -> int | None:
        """Where the chain recorded this event (a scan; rare)."""
        row = self.one(f"SELECT position FROM {self.store.chain} WHERE originator_id = %s "
                       "AND originator_version = %s ORDER BY position LIMIT 1",
                       (originator_id, version))
        return int(row[0]) if row else None


class ReadAhead:
    """An iterator over pages that a thread of its own produces, up to ``depth`` pages ahead
    of the consumer. An error in the thread is raised by the consumer's next ``next()``;
    ``close()`` stops the thread and waits for it (its queries must end before the
    snapshot's transaction does)."""

    _PAGE, _END, _ERROR = range(3)

    def __init__(self, pages: Iterator[Any], *, depth: int = 2,
                 on_close: Callable[[], None] | None = None) -> None:
        self._queue: queue.Queue[tuple[int, Any]] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._finished = False
        self._on_close = on_close
        self._thread = threading.Thread(target=self._produce, args=(pages,),
                                        name="ledger-read-ahead", daemon=True)
        self._thread.start()

    def _put(self, item: tuple[int, Any]) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self, pages: Iterator[Any]) -> None:
        try:
            for page in pages:
                if not self._put((self._PAGE, page)):
                    return
        except BaseException as exc:  # handed to the consumer, who raises it
            self._put((self._ERROR, exc))
            return
        self._put((self._END, None))

    def __iter__(self) -> ReadAhead:
        return self

    def __next__(self) -> Any:
        if self._finished:
            raise StopIteration
        kind, value = self._queue.get()
        if kind == self._PAGE:
            return value
        self._finished = True
        if kind == self._ERROR:
            raise value
        raise StopIteration

    def close(self) -> None:
        self._stop.set()
        self._finished = True
        self._thread.join()
        if self._on_close is not None:
            self._on_close()
            self._on_close = None
