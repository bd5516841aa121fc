"""Idempotency-Key: a retried write returns the first response and stores nothing new.

The record (principal, key) -> (fingerprint, status, response) is inserted by a hook that
runs *inside the events' insert transaction* (``CommandContext.after_insert``, see
domain/persistence/recorders.py): the events and their key commit together or not at all,
so a crash can never leave events without their key or a key without its events. The
response is computed in that transaction from the rows just inserted, so the stored answer
is exactly the one the first caller gets.

Two concurrent requests with the same key both miss the lookup and both run the command;
the second then fails (the aggregate's version is taken, or the key's primary key is), and
the caller looks the key up again and replays the first response.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson

from domain.clock import utc_now
from domain.journal import event_type_of
from domain.persistence.recorders import Tx
from service.storage import ServiceTables


def fingerprint(method: str, path: str, body: bytes, if_match: str | None) -> str:
    """What makes two requests 'the same': method, path, If-Match and the JSON body
    (canonical: key order and whitespace do not matter)."""
    try:
        canonical = orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS)
    except orjson.JSONDecodeError:
        canonical = body
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), (if_match or "").encode(), canonical):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


class StoredResponse:
    __slots__ = ("body", "fingerprint", "status")

    def __init__(self, fingerprint: str, status: int, body: dict[str, Any]) -> None:
        self.fingerprint = fingerprint
        self.status = status
        self.body = body


class IdempotencyStore:
    def __init__(self, tables: ServiceTables, clock: Callable[[], datetime] = utc_now) -> None:
        self.tables = tables
        self.clock = clock

    def lookup(self, principal: str, key: str) -> StoredResponse | None:
        with self.tables.transaction(commit=False) as tx:
            tx.execute(
                f"SELECT fingerprint, status, response FROM {self.tables.idempotency} "
                "WHERE principal = %s AND idempotency_key = %s",
                (principal, key),
            )
            row = tx.fetchone()
        if row is None:
            return None
        return StoredResponse(row[0], int(row[1]), orjson.loads(row[2]))

    def written_entity(self, tx: Tx, positions: Sequence[int],
                       entity_type: str) -> tuple[UUID, int]:
        """The id and new version of the ``entity_type`` aggregate among the events just
        inserted at ``positions`` (read inside the insert transaction)."""
        position = "rowid" if self.tables.dialect == "sqlite" else "notification_id"
        tx.execute(
            f"SELECT {position}, originator_id, originator_version, topic "
            f"FROM {self.tables.events} WHERE {position} >= %s AND {position} <= %s",
            (min(positions), max(positions)),
        )
        wanted = set(positions)
        found: tuple[UUID, int] | None = None
        for pos, originator_id, version, topic in sorted(tx.fetchall()):
            if pos in wanted and event_type_of(topic).partition(".")[0] == entity_type:
                found = (originator_id if isinstance(originator_id, UUID)
                         else UUID(str(originator_id)), int(version))
        if found is None:
            raise LookupError(f"no {entity_type} event among positions {positions}")
        return found

    def record_hook(self, principal: str, key: str, fingerprint: str, status: int,
                    render: Callable[[Tx, Sequence[int]], dict[str, Any]],
                    out: dict[str, Any]):
        """An after-insert hook that stores the response rendered from the new events;
        the rendered body is also left in ``out['body']`` for the first caller."""

        def hook(tx: Tx, positions: Sequence[int]) -> None:
            body = render(tx, positions)
            tx.execute(
                f"INSERT INTO {self.tables.idempotency} (principal, idempotency_key, "
                "fingerprint, status, response, created_at) VALUES (%s, %s, %s, %s, %s, %s)",
                (principal, key, fingerprint, status, orjson.dumps(body).decode(),
                 self.clock().isoformat()),
            )
            out["body"] = body

        return hook
