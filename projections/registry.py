"""The registry of projection generations and their tracking positions (table ``proj_state``).

One row per (projection, generation): ``state`` is ``live`` (what readers use; exactly one
per projection), ``building`` (a rebuild filling a fresh copy beside it), ``scratch`` (a
copy built up to a position, for comparisons) or ``retired`` (switched away from, tables
about to be dropped). ``position`` is the last event folded into that generation: it is
updated in the same transaction as the page of rows it covers, with a compare-and-set on
the old value, so two workers can never both apply a page and a crash loses nothing.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from projections.db import Cursor, Db

TABLE = "proj_state"
COLUMNS = ("name", "generation", "state", "position", "ledger_time", "fingerprint", "events",
           "created_at", "updated_at", "owner")


class RegistryConflict(Exception):
    """The tracking position moved under us (another worker, or a switch): re-read it."""


@dataclass(frozen=True, slots=True)
class Generation:
    name: str
    generation: int
    state: str
    position: int
    ledger_time: str | None
    fingerprint: str
    events: int
    created_at: str
    updated_at: str
    owner: str | None

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Generation:
        return cls(*row)


def now_text() -> str:
    """Milliseconds: a stamp cut to the second made a copy look up to a second older than
    it was to ``rebuild.STALE_AFTER``."""
    return datetime.now(tz=UTC).isoformat(timespec="milliseconds")


def owner_text() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def create_registry(cur: Cursor, db: Db) -> None:
    cur.execute(
        f"CREATE TABLE IF NOT EXISTS {db.name(TABLE)} (name TEXT NOT NULL, generation "
        f"{db.bigint} NOT NULL, state TEXT NOT NULL, position {db.bigint} NOT NULL, "
        f"ledger_time TEXT, fingerprint TEXT NOT NULL, events {db.bigint} NOT NULL, "
        "created_at TEXT NOT NULL, updated_at TEXT NOT NULL, owner TEXT, "
        "PRIMARY KEY (name, generation))"
    )


# The order in which a transaction that changes several registry rows takes them (their
# row locks on PostgreSQL): a worker advancing its generations, a rebuild's switch and its
# keep-alive stamps. Two transactions taking the same rows in different orders can deadlock.
# Names by code point (``COLLATE "C"``), as Python compares them in ``row_order``: under the
# database's own collation (``en_US.utf8`` in the postgres image) "Audit" would follow
# "accountability" in SQL and precede it in Python. (PostgreSQL's: only it locks rows.)
ROW_ORDER = 'name COLLATE "C", generation'


def row_order(name: str, generation: int) -> tuple[str, int]:
    """The sort key of a registry row in ``ROW_ORDER``."""
    return name, generation


def lock_registry(cur: Cursor, db: Db) -> None:
    """Serialise registry changes (creating generations, switching) across processes.
    SQLite: the write transaction already holds the database's single write lock."""
    if db.dialect == "postgres":
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (db.lock_key("projections"),))


def registry_exists(cur: Cursor, db: Db) -> bool:
    return db.table_exists(cur, TABLE)


def all_generations(cur: Cursor, db: Db, name: str | None = None) -> list[Generation]:
    sql = f"SELECT {', '.join(COLUMNS)} FROM {db.name(TABLE)}"
    params: tuple[Any, ...] = ()
    if name is not None:
        sql += " WHERE name=%s"
        params = (name,)
    cur.execute(sql + " ORDER BY name, generation", params)
    return [Generation.from_row(r) for r in cur.fetchall()]


def live_generations(cur: Cursor, db: Db) -> dict[str, Generation]:
    cur.execute(f"SELECT {', '.join(COLUMNS)} FROM {db.name(TABLE)} WHERE state='live'")
    return {g.name: g for g in map(Generation.from_row, cur.fetchall())}


def get_generation(cur: Cursor, db: Db, name: str, generation: int) -> Generation | None:
    cur.execute(f"SELECT {', '.join(COLUMNS)} FROM {db.name(TABLE)} WHERE name=%s AND "
                "generation=%s", (name, generation))
    row = cur.fetchone()
    return Generation.from_row(row) if row else None


def next_generation(cur: Cursor, db: Db, name: str) -> int:
    cur.execute(f"SELECT MAX(generation) FROM {db.name(TABLE)} WHERE name=%s", (name,))
    row = cur.fetchone()
    return (row[0] or 0) + 1 if row else 1


def insert_generation(cur: Cursor, db: Db, name: str, generation: int, state: str,
                      fingerprint: str) -> None:
    stamp = now_text()
    cur.execute(
        f"INSERT INTO {db.name(TABLE)} ({', '.join(COLUMNS)}) VALUES "
        "(%s, %s, %s, 0, NULL, %s, 0, %s, %s, %s)",
        (name, generation, state, fingerprint, stamp, stamp, owner_text()),
    )


def advance(cur: Cursor, db: Db, name: str, generation: int, *, expected: int, position: int,
            ledger_time: str, events: int, states: Sequence[str]) -> None:
    """Move a generation's position from ``expected`` to ``position`` (compare-and-set).
    On PostgreSQL the UPDATE also locks the row until commit, which serialises workers."""
    marks = ", ".join(["%s"] * len(states))
    cur.execute(
        f"UPDATE {db.name(TABLE)} SET position=%s, ledger_time=%s, events=events+%s, "
        f"updated_at=%s WHERE name=%s AND generation=%s AND position=%s AND state IN ({marks})",
        (position, ledger_time, events, now_text(), name, generation, expected, *states),
    )
    if cur.rowcount != 1:
        raise RegistryConflict(f"{name} generation {generation} is no longer at {expected}")


def set_state(cur: Cursor, db: Db, name: str, generation: int, state: str) -> None:
    cur.execute(f"UPDATE {db.name(TABLE)} SET state=%s, updated_at=%s WHERE name=%s AND "
                "generation=%s", (state, now_text(), name, generation))
    if cur.rowcount != 1:
        raise RegistryConflict(f"{name} generation {generation} is gone")


def touch(cur: Cursor, db: Db, name: str, generation: int, state: str) -> None:
    """Stamp a generation still in ``state`` as alive now, leaving its position alone (one
    no longer in that state is left as it is)."""
    cur.execute(f"UPDATE {db.name(TABLE)} SET updated_at=%s WHERE name=%s AND generation=%s "
                "AND state=%s", (now_text(), name, generation, state))


def delete_generation(cur: Cursor, db: Db, name: str, generation: int) -> None:
    cur.execute(f"DELETE FROM {db.name(TABLE)} WHERE name=%s AND generation=%s",
                (name, generation))
