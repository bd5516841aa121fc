"""Evidence an inspector can trust (DESIGN §6): every stored event is hash-chained in the
transaction that stores it, the chain head is signed at checkpoints (Ed25519), and the
chain can be verified in the store, exported as a bundle and verified offline.

Modules: ``canonical`` (the canonical bytes, defined once), ``store`` (tables, the
in-transaction hook, readers), ``keys`` and ``checkpoints`` (signing), ``verify`` (the walk
that names the first tampered position), ``operations`` (what callers use), ``bundle``
(export and offline verification), ``history`` (replay and diff for inspectors).
"""

from domain.integrity.operations import (
    CheckpointTimer,
    UnknownPosition,
    check_proof,
    checkpoint_if_due,
    install_integrity,
    integrity_status,
    make_checkpoint,
    proof,
    verify_ledger,
)

__all__ = [
    "CheckpointTimer",
    "UnknownPosition",
    "check_proof",
    "checkpoint_if_due",
    "install_integrity",
    "integrity_status",
    "make_checkpoint",
    "proof",
    "verify_ledger",
]
