"""Idempotency-Key: a retried write returns the first response and stores nothing new.

The record (principal, key) -> (fingerprint, status, response) is inserted by a hook that
runs *inside the events' insert transaction* (``CommandContext.after_insert``, see
domain/persistence/recorders.py): the events and their key commit together or not at all,
so a crash can never leave events without their key or a key without its events. The
response is rendered in that transaction from the command's receipt, so the stored answer
is exactly the one the first caller gets.

Two concurrent requests with the same key both miss the lookup and both run the command;
the second then fails (the aggregate's version is taken, or the key's primary key is), and
the caller looks the key up again and replays the first response.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson

from domain.application import Receipt
from domain.clock import utc_now
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
    # A first request does not look its key up (that would cost every write a round trip).
    # Once this process has replayed an answer, it looks keys up before running their
    # commands for this long: in a burst of retries (clients retrying after an outage or a
    # timeout) each retry is then one read. Run again, a retry fails its transaction on the
    # key, and under group commit that failure splits the whole batch, so the other
    # commands in it are committed again too (wrk, every write a retry: ~140 req/s against
    # ~500 for fresh keys).
    LOOKUP_FIRST_SECONDS = 10.0

    def __init__(self, tables: ServiceTables, clock: Callable[[], datetime] = utc_now) -> None:
        self.tables = tables
        self.clock = clock
        self._monotonic = time.monotonic  # the window's clock (tests move it)
        self._replayed_at: float | None = None

    def replayed(self) -> None:
        """An answer was replayed: retries may be arriving."""
        self._replayed_at = self._monotonic()

    def lookup_first(self) -> bool:
        """Whether to look a key up before running its command (see LOOKUP_FIRST_SECONDS)."""
        at = self._replayed_at
        return at is not None and self._monotonic() - at < self.LOOKUP_FIRST_SECONDS

    def lookup(self, principal: str, key: str) -> StoredResponse | None:
        row = self.tables.query_one(
            f"SELECT fingerprint, status, response FROM {self.tables.idempotency} "
            "WHERE principal = %s AND idempotency_key = %s",
            (principal, key),
        )
        if row is None:
            return None
        return StoredResponse(row[0], int(row[1]), orjson.loads(row[2]))

    def record_hook(self, principal: str, key: str, fingerprint: str, status: int,
                    render: Callable[[Receipt], dict[str, Any]],
                    out: dict[str, Any]):
        """An after-insert hook that stores the response rendered from what the command
        wrote (its receipt: entity, version, positions); the rendered body is also left in
        ``out['body']`` for the first caller."""

        def hook(tx: Tx, receipt: Receipt) -> None:
            body = render(receipt)
            tx.execute(
                f"INSERT INTO {self.tables.idempotency} (principal, idempotency_key, "
                "fingerprint, status, response, created_at) VALUES (%s, %s, %s, %s, %s, %s)",
                (principal, key, fingerprint, status, orjson.dumps(body).decode(),
                 self.clock().isoformat()),
            )
            out["body"] = body

        return hook
