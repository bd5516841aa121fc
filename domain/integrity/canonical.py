"""The canonical bytes of a stored event and the chain over them — defined here, once.

Everything that hashes an event (the in-transaction hook, ``verify``, checkpoints, proofs,
bundle export and the offline bundle verifier) calls these functions, and they take the
event's row *as stored*: the stored state bytes are hashed as they are, never decoded and
re-serialised (the mistake that bit QLDB and EventSourcingDB users).

Format ``chain-v1`` (docs/integrity.md repeats it for inspectors)::

    canonical(event) = i64(position)
                     ‖ u32(len(id)) ‖ id          id: the originator id as SQLite stores it,
                                                 32 lowercase hex digits (UUID.hex), ASCII
                     ‖ i64(originator_version)
                     ‖ u32(len(topic)) ‖ topic    topic: UTF-8
                     ‖ SHA-256(state)             state: the stored bytes, 32-byte digest

    hash(first event) = SHA-256(32 zero bytes ‖ canonical(first event))
    hash(event n)     = SHA-256(hash(event before n) ‖ canonical(event n))

``i64``/``u32`` are big-endian two's-complement/unsigned integers of 8/4 bytes. The state
enters through its SHA-256 so that a proof for one event, or the tail of a bundle, can carry
the other events' digests instead of their contents.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Any
from uuid import UUID

FORMAT = "chain-v1"
GENESIS = bytes(32)
HASH_SIZE = 32

_I64_U32 = struct.Struct(">qI")
_sha256 = hashlib.sha256


def originator_id_text(value: Any) -> str:
    """The originator id as it enters the canonical bytes: what SQLite stores (UUID.hex);
    PostgreSQL's ``uuid`` values map to the same text. Any other stored value (a tampered
    SQLite row) is taken as the text it is, so it can only fail to match."""
    if isinstance(value, UUID):
        return value.hex
    return str(value)


def stored_bytes(value: Any) -> bytes:
    """The state column's value as bytes. The ledger only ever stores bytes (BLOB/bytea);
    a value of another SQLite storage class (e.g. TEXT after ``UPDATE ... SET state =
    replace(state, ...)``) is a change of the row, so it is hashed under a marker that no
    stored state begins with (a zero byte), rather than as the same bytes."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        return b"\x00text\x00" + value.encode("utf-8", "surrogatepass")
    return b"\x00" + type(value).__name__.encode("ascii") + b"\x00" + repr(value).encode("utf-8")


def state_digest(state: bytes) -> bytes:
    return _sha256(stored_bytes(state)).digest()


def canonical_bytes(position: int, originator_id: str, version: int, topic: str,
                    state_sha256: bytes) -> bytes:
    """The canonical bytes of one event, given the SHA-256 of its stored state."""
    try:
        oid = originator_id.encode("utf-8")
        top = topic.encode("utf-8")
        return b"".join((
            _I64_U32.pack(position, len(oid)), oid,
            _I64_U32.pack(version, len(top)), top,
            state_sha256,
        ))
    except (AttributeError, TypeError, struct.error, UnicodeError):
        # A column changed to another type (SQLite lets a row hold anything): give such a
        # row bytes that no well-formed row has, so it is reported, not crashed on.
        return b"\x00malformed\x00" + repr(
            (position, originator_id, version, topic, state_sha256)).encode("utf-8", "replace")


def chain_hash(previous: bytes, position: int, originator_id: str, version: int, topic: str,
               state: bytes) -> bytes:
    """hash_n = SHA-256(hash_{n-1} ‖ canonical(event n)), from the stored row."""
    stored = state if type(state) is bytes else stored_bytes(state)  # bytes: nearly always
    return _sha256(
        previous + canonical_bytes(position, originator_id, version, topic,
                                   _sha256(stored).digest())
    ).digest()


def chain_hash_from_digest(previous: bytes, position: int, originator_id: str, version: int,
                           topic: str, state_sha256: bytes) -> bytes:
    """The same link when only the state's digest is known (proofs, bundle tails)."""
    return _sha256(
        previous + canonical_bytes(position, originator_id, version, topic, state_sha256)
    ).digest()
