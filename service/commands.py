"""Running one Ledger command for an HTTP request: the actor from the token, the request id
as correlation id, the Idempotency-Key record in the same transaction, the response.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from uuid import uuid4

from eventsourcing.persistence import RecordConflictError
from fastapi import Request
from fastapi.responses import JSONResponse

from domain.actors import CommandContext, SourceDocument
from domain.application import Receipt
from domain.errors import ConcurrentWrite, DomainError
from service.deps import Services, etag
from service.problems import ProblemError
from service.tokens import TokenInfo

# Entity types whose reads carry an ETag (and whose writes accept If-Match).
VERSIONED = {"Task", "Directive"}

# How many times a write without If-Match is run when it loses a race with another writer
# of the same entity (409 concurrent-write): the client asked for "the current state", and
# the state that won is the current one, so the server reloads and runs the command again
# (its rules checked afresh) instead of handing the 409 back for the client to do the same.
ATTEMPTS_WITHOUT_IF_MATCH = 3


class IdempotencyKeyReused(ProblemError):
    def __init__(self) -> None:
        super().__init__(
            422, "idempotency-key-reused",
            "this Idempotency-Key was already used for a different request (another body, "
            "path or If-Match); use a new key for a new write",
            field="Idempotency-Key",
        )


def result_body(entity_type: str, entity_id: Any, version: int, positions: Sequence[int],
                location: str | None) -> dict[str, Any]:
    positions = list(positions)
    return {
        "entity_type": entity_type,
        "entity_id": str(entity_id),
        "version": version,
        "position": positions[-1] if positions else None,
        "positions": positions,
        "location": location,
    }


def _respond(status: int, body: dict[str, Any], *, replayed: bool) -> JSONResponse:
    headers = {}
    if body.get("entity_type") in VERSIONED:
        headers["ETag"] = etag(body["version"])
    if status == 201 and body.get("location"):
        headers["Location"] = body["location"]
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(body, status_code=status, headers=headers)


def _replay(request: Request, svc: Services, stored: Any, request_fp: str | None
            ) -> JSONResponse:
    """The stored answer for a key, if this request is the one it answered."""
    if stored.fingerprint != request_fp:
        raise IdempotencyKeyReused() from None  # not a consequence of the command's error
    svc.idempotency.replayed()
    request.state.position = stored.body.get("position")
    return _respond(stored.status, stored.body, replayed=True)


def execute(
    request: Request,
    svc: Services,
    token: TokenInfo,
    command: Callable[[CommandContext], Receipt],
    *,
    entity_type: str,
    location: Callable[[Any], str],
    key: str | None,
    source_document: Any = None,
    status: int = 200,
) -> JSONResponse:
    """Run ``command`` as the token's actor. With an Idempotency-Key, a stored answer is
    replayed (or the key refused if it was used for another request).

    The key is not looked up first: a first request (the common case) should not pay a
    round trip for it. A retry runs the command again; its key record then collides with
    the stored one inside the events' transaction, which rolls everything back, or the
    command is refused because the first one already happened. Either way the failure
    path looks the key up and answers as the first time. Once a process has replayed an
    answer, it looks keys up first for a while (``IdempotencyStore.LOOKUP_FIRST_SECONDS``),
    since more retries are likely to follow."""
    principal = token.principal
    request_fp = getattr(request.state, "fingerprint", None)
    if key is not None and svc.idempotency.lookup_first():
        stored = svc.idempotency.lookup(principal, key)
        if stored is not None:
            return _replay(request, svc, stored, request_fp)

    out: dict[str, Any] = {}
    hooks: tuple[Any, ...] = ()
    if key is not None:
        def render(receipt: Receipt) -> dict[str, Any]:
            return result_body(entity_type, receipt.entity_id, receipt.version,
                               receipt.positions, location(receipt.entity_id))

        hooks = (svc.idempotency.record_hook(principal, key, request_fp, status, render, out),)
    document = None
    if source_document is not None:
        document = SourceDocument(source_document.number, source_document.issued_on)
    ctx = CommandContext(
        token.actor(),
        correlation_id=getattr(request.state, "request_id", None) or uuid4().hex,
        source_document=document,
        after_insert=hooks,
    )
    attempts = 1 if request.headers.get("if-match") else ATTEMPTS_WITHOUT_IF_MATCH
    for attempt in range(1, attempts + 1):
        try:
            receipt = command(ctx)
            break
        except (DomainError, RecordConflictError) as exc:
            # A concurrent retry with the same key may have won the race: answer as it did.
            if key is not None:
                stored = svc.idempotency.lookup(principal, key)
                if stored is not None:
                    return _replay(request, svc, stored, request_fp)
            if not (isinstance(exc, ConcurrentWrite) and attempt < attempts):
                raise
    body = out.get("body") or result_body(entity_type, receipt.entity_id, receipt.version,
                                          receipt.positions, location(receipt.entity_id))
    request.state.position = body["position"]
    request.state.events_written = len(body["positions"])
    return _respond(status, body, replayed=False)
