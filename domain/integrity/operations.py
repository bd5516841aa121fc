"""What the CLI, the HTTP layer and the worker call: install the chain on a Ledger, verify it,
make checkpoints (on demand or on a timer), report the status, and build or check a proof
for one event.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from domain.errors import NotFound
from domain.integrity.canonical import (
    FORMAT,
    GENESIS,
    chain_hash_from_digest,
    state_digest,
    stored_bytes,
)
from domain.integrity.checkpoints import checkpoint_signature_valid, sign_checkpoint
from domain.integrity.errors import IntegrityFailure
from domain.integrity.keys import raw_public_bytes
from domain.integrity.store import ChainStore, Checkpoint, Reader
from domain.integrity.verify import Report, check_checkpoints, walk


class UnknownPosition(NotFound):
    code = "unknown-position"


def install_integrity(ledger: Any) -> ChainStore:
    """Create the chain tables (chaining any events already stored) and register the hook
    that extends the chain inside every insert transaction. Called by ``Ledger.__init__``."""
    store = ChainStore(ledger.recorder, ledger.store.dialect)
    store.install()
    ledger.integrity = store
    ledger.after_insert_hooks.append(store.after_insert)
    return store


def _store(ledger: Any) -> ChainStore:
    store = getattr(ledger, "integrity", None)
    return store if store is not None else install_integrity(ledger)


def _trusted(keys: Sequence[Ed25519PublicKey | bytes] | None) -> list[bytes] | None:
    if keys is None:
        return None
    return [k if isinstance(k, bytes) else raw_public_bytes(k) for k in keys]


# -- verification -------------------------------------------------------------------------------


def verify_ledger(ledger: Any, *, from_position: int = 1,
                  trusted_keys: Sequence[Ed25519PublicKey | bytes] | None = None,
                  progress: Callable[[int], None] | None = None,
                  total: Callable[[int], None] | None = None) -> Report:
    """Recompute the chain from the stored events (positions ≥ ``from_position``), check the
    checkpoints, and report every disagreement (``Report.first`` is the first position).

    With ``from_position`` > 1 the walk starts from the chain hash stored just before it,
    which is then taken on trust; checkpoints before it are checked for their signatures
    only. ``trusted_keys`` None: signatures are checked against the public keys stored with
    the checkpoints, which an attacker with the database could replace (the report says so).
    """
    store = _store(ledger)
    from_position = max(1, from_position)
    trusted = _trusted(trusted_keys)
    report = Report(from_position=from_position, keys_trusted=trusted is not None)
    with store.snapshot() as reader:
        valid, findings = check_checkpoints(reader.checkpoints(), trusted)
        report.findings.extend(findings)
        earlier = [c for c in valid if c.position < from_position]
        report.latest_checkpoint = earlier[-1] if earlier else None
        before = reader.chain_entry_before(from_position) if from_position > 1 else None
        if total is not None:
            total(_count_from(reader, from_position))
        walk(reader.events(from_position, ahead=True), reader.chain(from_position),
             start_hash=before[1] if before else GENESIS,
             checkpoints=[c for c in valid if c.position >= from_position],
             locator=reader, report=report, progress=progress)
    return report


def _count_from(reader: Reader, position: int) -> int:
    row = reader.one(f"SELECT count(*) FROM {reader.store.events} "
                     f"WHERE {reader.store.position} >= %s", (position,))
    return int(row[0]) if row else 0


# -- checkpoints ----------------------------------------------------------------------------------


def make_checkpoint(ledger: Any, key: Ed25519PrivateKey, *, at: datetime | None = None,
                    trusted_keys: Sequence[Ed25519PublicKey | bytes] | None = None
                    ) -> Checkpoint | None:
    """Sign the current chain head, after re-verifying every event since the latest
    checkpoint signed by a trusted key (by default: this key). Refuses (IntegrityFailure)
    if anything disagrees, so a checkpoint never vouches for tampered data. Returns None
    when no event was stored since the latest checkpoint."""
    store = _store(ledger)
    trusted = _trusted(trusted_keys) or [raw_public_bytes(key.public_key())]
    for _attempt in range(5):
        with store.snapshot() as reader:
            head = reader.head()
            if head is None:
                raise IntegrityFailure("the ledger holds no events yet; nothing to sign")
            checkpoints = reader.checkpoints()
            latest = checkpoints[-1] if checkpoints else None
            anchor = _trusted_anchor(reader, checkpoints, trusted)
            if anchor is not None and anchor.position >= head[0]:
                return None  # (a forged checkpoint further on does not stop us signing)
            report = Report(from_position=(anchor.position + 1) if anchor else 1)
            walk(reader.events(report.from_position, head[0], ahead=True),
                 reader.chain(report.from_position, head[0]),
                 start_hash=anchor.head if anchor else GENESIS, checkpoints=[],
                 locator=reader, report=report)
            if not report.ok:
                raise IntegrityFailure(f"not signing: {report.summary()}")
            number = (latest.number + 1) if latest else 1
        checkpoint = sign_checkpoint(key, number, head[0], head[1], at or ledger.clock())
        with store.write() as tx:
            tx.execute(f"SELECT MAX(number) FROM {store.checkpoints}")
            row = tx.fetchone()
            if (row[0] if row else None) != (number - 1 if number > 1 else None):
                continue  # another process signed meanwhile: look again
            store.insert_checkpoint(tx, checkpoint)
        return checkpoint
    raise IntegrityFailure("could not record a checkpoint: other processes kept signing first")


def _trusted_anchor(reader: Reader, checkpoints: list[Checkpoint],
                    trusted: list[bytes]) -> Checkpoint | None:
    """The latest checkpoint we can start from: valid, by a trusted key, and still matching
    the chain (otherwise refuse: the chain was rewritten under a signed checkpoint)."""
    for cp in reversed(checkpoints):
        if cp.public_key in trusted and checkpoint_signature_valid(cp):
            entry = reader.chain_entry(cp.position)
            if entry is None or entry[3] != cp.head:
                raise IntegrityFailure(
                    f"not signing: checkpoint #{cp.number} signed head {cp.head.hex()[:16]}… "
                    f"at position {cp.position} but the chain there differs; run ledger verify")
            return cp
    return None


def checkpoint_if_due(ledger: Any, key: Ed25519PrivateKey) -> Checkpoint | None:
    """For a timer in the worker or the API process: sign the head if it moved since the
    latest checkpoint; otherwise do nothing. Raises IntegrityFailure if the chain is broken."""
    return make_checkpoint(ledger, key)


class CheckpointTimer:
    """Calls :func:`checkpoint_if_due` every ``interval`` seconds in a daemon thread.

    ``timer = CheckpointTimer(ledger, load_signing_key(), interval=300); timer.start()`` …
    ``timer.stop()``. Failures go to ``on_error`` (default: kept in ``last_error``) and the
    timer keeps running, so a broken chain is reported again at every tick.
    """

    def __init__(self, ledger: Any, key: Ed25519PrivateKey, interval: float = 300.0,
                 on_error: Callable[[Exception], None] | None = None) -> None:
        self.ledger = ledger
        self.key = key
        self.interval = interval
        self.on_error = on_error
        self.last_error: Exception | None = None
        self.last_checkpoint: Checkpoint | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ledger-checkpoints", daemon=True)

    def start(self) -> CheckpointTimer:
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def tick(self) -> Checkpoint | None:
        try:
            made = checkpoint_if_due(self.ledger, self.key)
        except Exception as exc:  # keep the timer alive; report each failure
            self.last_error = exc
            if self.on_error is not None:
                self.on_error(exc)
            return None
        self.last_error = None
        if made is not None:
            self.last_checkpoint = made
        return made

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.tick()


# -- status and proofs (plain data for the HTTP layer) ------------------------------------------


def integrity_status(ledger: Any) -> dict[str, Any]:
    """Chain head and latest checkpoint, cheaply (no verification)."""
    store = _store(ledger)
    with store.snapshot() as reader:
        head = reader.head()
        latest = reader.latest_checkpoint()
        sealed = latest.position if latest else 0
        row = reader.one(f"SELECT count(*) FROM {store.chain} WHERE position > %s", (sealed,))
    return {
        "format": FORMAT,
        "head": {"position": head[0], "hash": head[1].hex()} if head else None,
        "latest_checkpoint": latest.as_json() if latest else None,
        "events_after_latest_checkpoint": int(row[0]) if row else 0,
    }


def _event_json(row: tuple[int, str, int, str, bytes], *, with_state: bool) -> dict[str, Any]:
    position, oid, version, topic, state = row
    out: dict[str, Any] = {"position": position, "originator_id": oid,
                           "originator_version": version, "topic": topic,
                           "state_sha256": state_digest(state).hex()}
    if with_state:
        out["state_base64"] = base64.b64encode(stored_bytes(state)).decode("ascii")
    return out


def proof(ledger: Any, position: int) -> dict[str, Any]:
    """What an auditor needs to check the event at ``position`` against a signed checkpoint:
    the event's stored fields (state in base64), the chain hash before it, and for every
    later event up to the first checkpoint at or after it, the fields that enter its
    canonical bytes (with the state as its SHA-256 only, so other events' contents are not
    disclosed), and that checkpoint. ``check_proof`` (or docs/integrity.md, by hand) checks
    it. Without a checkpoint yet, ``checkpoint`` is None: the event is in the sealing window.
    """
    store = _store(ledger)
    with store.snapshot() as reader:
        entry = reader.chain_entry(position)
        rows = next(reader.events(position, position), [])
        if entry is None or not rows:
            raise UnknownPosition(f"no chained event at position {position}", field="position")
        before = reader.chain_entry_before(position)
        cp_row = reader.one(
            "SELECT number FROM " + store.checkpoints + " WHERE position >= %s "
            "ORDER BY position, number LIMIT 1", (position,))
        checkpoint = None
        if cp_row is not None:
            checkpoint = next(c for c in reader.checkpoints() if c.number == cp_row[0])
        end = checkpoint.position if checkpoint else position
        path = []
        for page in reader.events(position + 1, end):
            path.extend(_event_json(r, with_state=False) for r in page)
    return {
        "format": FORMAT,
        "position": position,
        "event": _event_json(rows[0], with_state=True),
        "previous_hash": (before[1] if before else GENESIS).hex(),
        "hash": entry[3].hex(),
        "path": path,
        "checkpoint": checkpoint.as_json() if checkpoint else None,
    }


def check_proof(data: dict[str, Any],
                trusted_keys: Sequence[Ed25519PublicKey | bytes] | None = None
                ) -> tuple[bool, str]:
    """Check a proof offline: the event's state matches its digest, the chain from the
    previous hash through the event and the path reaches the checkpoint's head, and the
    checkpoint's signature verifies (by a trusted key, when keys are given)."""
    try:
        event = data["event"]
        state = base64.b64decode(event["state_base64"], validate=True)
        if state_digest(state).hex() != event["state_sha256"]:
            return False, "the event's state does not match its SHA-256"
        current = chain_hash_from_digest(
            bytes.fromhex(data["previous_hash"]), int(event["position"]),
            event["originator_id"], int(event["originator_version"]), event["topic"],
            state_digest(state))
        if current.hex() != data["hash"]:
            return False, ("the event does not produce the chain hash at position "
                           f"{event['position']}")
        last = int(event["position"])
        for step in data["path"]:
            current = chain_hash_from_digest(
                current, int(step["position"]), step["originator_id"],
                int(step["originator_version"]), step["topic"],
                bytes.fromhex(step["state_sha256"]))
            last = int(step["position"])
        if data.get("checkpoint") is None:
            return False, (f"position {event['position']} is not covered by a checkpoint yet "
                           "(sealing window); the chain hash alone is not signed evidence")
        cp = Checkpoint.from_json(data["checkpoint"])
        if cp.position != last or cp.head != current:
            return False, (f"the chain through position {last} does not reach checkpoint "
                           f"#{cp.number}'s head")
        trusted = _trusted(trusted_keys)
        if trusted is not None and cp.public_key not in trusted:
            return False, f"checkpoint #{cp.number} is signed by an untrusted key"
        if not checkpoint_signature_valid(cp):
            return False, f"checkpoint #{cp.number}'s signature does not verify"
    except (KeyError, TypeError, ValueError) as exc:
        return False, f"malformed proof: {exc}"
    return True, (f"event at position {event['position']} is covered by checkpoint "
                  f"#{cp.number} (position {cp.position}, signed {cp.signed_at})")
