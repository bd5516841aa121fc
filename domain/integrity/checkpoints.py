"""Signed checkpoints: "at time T the chain head at position P was H", signed with Ed25519.

The signed message is UTF-8 text, five lines, each ending in a newline, so that an
inspector can rebuild it by hand (docs/integrity.md shows how to check it with openssl)::

    chidao-ledger checkpoint v1
    number: 7
    position: 1234
    head: <64 lowercase hex digits>
    time: 2024-05-31T03:00:00.123456+00:00

``number`` runs 1, 2, 3... so that removing a checkpoint from the middle shows.
"""

from __future__ import annotations

from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from domain.integrity.keys import key_id, raw_public_bytes, signature_valid
from domain.integrity.store import Checkpoint

HEADER = "chidao-ledger checkpoint v1"


def checkpoint_message(number: int, position: int, head: bytes, signed_at: str) -> bytes:
    return (f"{HEADER}\nnumber: {number}\nposition: {position}\nhead: {head.hex()}\n"
            f"time: {signed_at}\n").encode()


def sign_checkpoint(key: Ed25519PrivateKey, number: int, position: int, head: bytes,
                    at: datetime) -> Checkpoint:
    signed_at = at.isoformat()
    public = raw_public_bytes(key.public_key())
    signature = key.sign(checkpoint_message(number, position, head, signed_at))
    return Checkpoint(number=number, position=position, head=head, signed_at=signed_at,
                      key_id=key_id(public), public_key=public, signature=signature)


def checkpoint_signature_valid(cp: Checkpoint) -> bool:
    """The signature against the public key the checkpoint names (whether that key is
    trusted is the caller's question)."""
    if len(cp.head) != 32 or key_id(cp.public_key) != cp.key_id:
        return False
    return signature_valid(cp.public_key, cp.signature,
                           checkpoint_message(cp.number, cp.position, cp.head, cp.signed_at))
