"""The service's own tables (tokens, idempotency records), kept in the same database as the
events so that an idempotency record can be written in the events' transaction.

Both dialects get the same columns; timestamps are ISO 8601 UTC text, which sorts and
compares correctly on both. On PostgreSQL the tables live in the ledger's schema.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from uuid import UUID

from domain.application import Ledger
from domain.persistence.recorders import Tx


class ServiceTables:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.dialect = ledger.store.dialect
        if self.dialect == "postgres":
            schema = ledger.recorder.datastore.schema
            self.prefix = f'"{schema}".'
        else:
            self.prefix = ""
        self.tokens = f"{self.prefix}ledger_tokens"
        self.idempotency = f"{self.prefix}ledger_idempotency"
        self.events = f"{self.prefix}{ledger.recorder.events_table_name}"

    @contextmanager
    def transaction(self, *, commit: bool) -> Iterator[Tx]:
        with self.ledger.recorder.datastore.transaction(commit=commit) as cursor:
            yield Tx(cursor, self.dialect)

    def create(self) -> None:
        with self.transaction(commit=True) as tx:
            if self.dialect == "postgres":  # processes starting together: one at a time
                from domain.persistence.recorders import DDL_LOCK

                tx.execute("SELECT pg_advisory_xact_lock(%s)", (DDL_LOCK,))
            tx.execute(
                f"CREATE TABLE IF NOT EXISTS {self.tokens} ("
                "token_id TEXT PRIMARY KEY, "
                "secret_sha256 TEXT NOT NULL, "
                "role TEXT NOT NULL, "
                "agency TEXT, "
                "label TEXT, "
                "created_at TEXT NOT NULL, "
                "created_by TEXT, "
                "expires_at TEXT, "
                "revoked_at TEXT)"
            )
            tx.execute(
                f"CREATE TABLE IF NOT EXISTS {self.idempotency} ("
                "principal TEXT NOT NULL, "
                "idempotency_key TEXT NOT NULL, "
                "fingerprint TEXT NOT NULL, "
                "status INTEGER NOT NULL, "
                "response TEXT NOT NULL, "
                "created_at TEXT NOT NULL, "
                "PRIMARY KEY (principal, idempotency_key))"
            )

    def originator_param(self, entity_id: UUID) -> object:
        """How the events table stores an aggregate id (SQLite: hex text; PostgreSQL: uuid)."""
        return entity_id.hex if self.dialect == "sqlite" else entity_id
