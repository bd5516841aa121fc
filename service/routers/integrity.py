"""Integrity of the journal for inspectors and auditors (DESIGN §6, docs/integrity.md).

Both routes only read: the chain head with the latest signed checkpoint, and the proof of
one event (its stored bytes, the chain hash before it, the path of later chain links up to
the first checkpoint that covers it, and that checkpoint). A proof is checked offline with
``domain.integrity.operations.check_proof`` or by hand (docs/integrity.md).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from domain.integrity.operations import integrity_status, proof
from service.deps import Reader, ServicesDep
from service.openapi import READ_ERRORS

router = APIRouter(prefix="/v1/integrity", tags=["integrity"])


@router.get("", responses=READ_ERRORS)
def status(svc: ServicesDep, _: Reader) -> dict[str, Any]:
    """Chain head (position, SHA-256) and the latest signed checkpoint; how many events are
    not yet covered by a checkpoint (the sealing window)."""
    return integrity_status(svc.ledger)


@router.get("/proof/{position}", responses=READ_ERRORS)
def event_proof(svc: ServicesDep, _: Reader,
                position: Annotated[int, Path(ge=1, le=2**62)]) -> dict[str, Any]:
    """The data an auditor needs to check the event at `position` against a signed
    checkpoint. Other events appear only as digests of their state. Without a covering
    checkpoint yet, `checkpoint` is null (the event is in the sealing window)."""
    return proof(svc.ledger, position)
