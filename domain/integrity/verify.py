"""Verification: recompute the chain from the stored events, check the signed checkpoints,
and name the first position where stored data and chain disagree.

The walk merges two streams in position order — the stored events and the chain entries —
and checks every link locally: ``SHA-256(stored hash before p ‖ canonical(event p))`` must
equal the stored hash at p. Because each link starts from the *stored* previous hash, one
tampered row produces a finding at its own position and the walk continues cleanly after
it, so the findings are independent and the first one is the first tampered position:

* event and chain entry, link fails, same identity      → **edited**
* event and chain entry, different identity, the event
  (or the chained one) sits at another position          → **reordered**
* chain entry without an event                           → **deleted** (or reordered, if the
                                                            event is stored elsewhere)
* event without a chain entry                            → **inserted** (or reordered)
* a link fails although the event is genuine (the next
  link only verifies from the recomputed hash)           → **chain-altered**

Local links cannot see an attacker who rewrites the chain table to match altered events;
the signed checkpoints do: each checkpoint's head must equal the stored chain hash at its
position (**chain-rewritten** otherwise), and its signature must verify against a trusted
public key (**checkpoint-altered** / **checkpoint-untrusted**); numbers run 1, 2, 3... so a
removed checkpoint shows (**checkpoint-missing**).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Protocol

from domain.integrity.canonical import GENESIS, chain_hash
from domain.integrity.checkpoints import checkpoint_signature_valid
from domain.integrity.store import Checkpoint


class Kind(StrEnum):
    EDITED = "edited"
    DELETED = "deleted"
    INSERTED = "inserted"
    REORDERED = "reordered"
    CHAIN_ALTERED = "chain-altered"
    TRUNCATED = "truncated"
    CHAIN_REWRITTEN = "chain-rewritten"
    CHECKPOINT_ALTERED = "checkpoint-altered"
    CHECKPOINT_UNTRUSTED = "checkpoint-untrusted"
    CHECKPOINT_MISSING = "checkpoint-missing"


@dataclass(frozen=True, slots=True)
class Finding:
    kind: Kind
    position: int
    message: str
    other_position: int | None = None
    checkpoint: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "position": self.position, "message": self.message,
                "other_position": self.other_position, "checkpoint": self.checkpoint}


class Locator(Protocol):
    """Where an event (originator id, version) is stored now, and where it was chained."""

    def stored_at(self, originator_id: str, version: int) -> int | None: ...

    def chained_at(self, originator_id: str, version: int) -> int | None: ...


EventRow = tuple[int, str, int, str, bytes]  # position, originator id, version, topic, state
ChainRow = tuple[int, str, int, bytes]  # position, originator id, version, hash
LinkFn = Callable[[bytes, EventRow], bytes]
_BEYOND = 2**63


def _link(previous: bytes, event: EventRow) -> bytes:
    position, oid, version, topic, state = event
    return chain_hash(previous, position, oid, version, topic, state)


def _links_holding(link: LinkFn, previous: bytes, events: Sequence[EventRow],
                   chain: Sequence[ChainRow], start: int, stop_position: int) -> int:
    """How many rows from ``events[start]`` on link to the stored hash beside them
    (``chain[i][3]``), each from the stored hash before it (``previous`` before the first).
    Counting stops at the first link that fails (not counted) and after the row at or past
    ``stop_position`` (a checkpoint to compare there)."""
    i = start
    while i < len(events):
        stored = chain[i][3]
        if link(previous, events[i]) != stored:
            break
        previous = stored
        i += 1
        if events[i - 1][0] >= stop_position:
            break
    return i - start


@dataclass
class Report:
    """What a verification found. ``ok`` only if nothing at all is wrong."""

    from_position: int
    events: int = 0
    chain_entries: int = 0
    last_position: int | None = None
    head: bytes | None = None
    checkpoints_checked: int = 0
    latest_checkpoint: Checkpoint | None = None
    keys_trusted: bool = False
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def first(self) -> Finding | None:
        return min(self.findings, key=lambda f: (f.position, list(Kind).index(f.kind)),
                   default=None)

    @property
    def unsealed(self) -> tuple[int, int] | None:
        """Positions after the latest valid checkpoint (the sealing window), if any."""
        if self.last_position is None:
            return None
        sealed = self.latest_checkpoint.position if self.latest_checkpoint else 0
        if self.last_position <= sealed:
            return None
        return (sealed + 1, self.last_position)

    def summary(self) -> str:
        if not self.ok:
            first = self.first
            assert first is not None
            more = len(self.findings) - 1
            tail = f" (and {more} more finding{'s' if more != 1 else ''})" if more else ""
            return f"FAILED at position {first.position}: {first.kind.value}: {first.message}{tail}"
        checked = f"{self.events} event{'s' if self.events != 1 else ''}"
        where = f" from position {self.from_position}" if self.from_position > 1 else ""
        text = f"OK: {checked}{where} match the chain"
        if self.head is not None:
            text += f" (head {self.head.hex()[:16]}… at position {self.last_position})"
        return text

    def as_json(self) -> dict[str, Any]:
        first = self.first
        return {
            "ok": self.ok,
            "summary": self.summary(),
            "from_position": self.from_position,
            "events": self.events,
            "last_position": self.last_position,
            "head": self.head.hex() if self.head else None,
            "checkpoints_checked": self.checkpoints_checked,
            "latest_checkpoint": self.latest_checkpoint.as_json()
            if self.latest_checkpoint else None,
            "unsealed": list(self.unsealed) if self.unsealed else None,
            "keys_trusted": self.keys_trusted,
            "first": first.as_json() if first else None,
            "findings": [f.as_json() for f in sorted(self.findings, key=lambda f: f.position)],
        }


def check_checkpoints(checkpoints: Sequence[Checkpoint], trusted: Sequence[bytes] | None
                      ) -> tuple[list[Checkpoint], list[Finding]]:
    """Signatures and numbering. Returns the checkpoints that can be relied on, and the
    findings about the others. ``trusted``: raw public keys; None means "the keys stored
    beside the checkpoints" (weaker: whoever rewrote the database could have replaced them)."""
    valid: list[Checkpoint] = []
    findings: list[Finding] = []
    expected = 1
    for cp in sorted(checkpoints, key=lambda c: c.number):
        if cp.number != expected and cp.number > expected:
            missing = (f"#{expected}" if cp.number == expected + 1
                       else f"#{expected}–#{cp.number - 1}")
            findings.append(Finding(
                Kind.CHECKPOINT_MISSING, cp.position,
                f"checkpoint {missing} is missing before #{cp.number}: checkpoints were removed",
                checkpoint=cp.number))
        expected = cp.number + 1
        if trusted is not None and cp.public_key not in trusted:
            findings.append(Finding(
                Kind.CHECKPOINT_UNTRUSTED, cp.position,
                f"checkpoint #{cp.number} is signed by key {cp.key_id[:16]}…, which is not a "
                "trusted key", checkpoint=cp.number))
            continue
        if not checkpoint_signature_valid(cp):
            findings.append(Finding(
                Kind.CHECKPOINT_ALTERED, cp.position,
                f"checkpoint #{cp.number} (position {cp.position}, signed {cp.signed_at}): "
                "the signature does not verify; the checkpoint was altered", checkpoint=cp.number))
            continue
        valid.append(cp)
    return valid, findings


def walk(events: Iterable[Sequence[EventRow]], chain: Iterable[Sequence[ChainRow]], *,
         start_hash: bytes, checkpoints: Sequence[Checkpoint], locator: Locator,
         report: Report, progress: Callable[[int], None] | None = None,
         link: LinkFn = _link) -> None:
    """Merge the two page streams in position order, checking every link (see module doc).
    ``checkpoints`` must be the valid ones, at positions ≥ the first position walked."""
    findings = report.findings
    event_pages = iter(events)
    chain_pages = iter(chain)
    ev_buf: Sequence[EventRow] = ()
    ch_buf: Sequence[ChainRow] = ()
    ei = ci = 0
    previous = start_hash  # the stored hash of the previous chain entry
    pending: tuple[int, bytes] | None = None  # (finding index, hash if that event is genuine)
    cps = sorted(checkpoints, key=lambda c: c.position)
    ck = 0
    next_cp = cps[0].position if cps else _BEYOND  # position of the next checkpoint to compare
    sealed_upto = report.from_position - 1  # last position vouched for by a checkpoint
    found_at: set[int] = set()

    def add(finding: Finding) -> int:
        findings.append(finding)
        found_at.add(finding.position)
        return len(findings) - 1

    def reached(position: int, stored: bytes | None) -> None:
        """Compare checkpoints up to ``position`` with the chain as stored there."""
        nonlocal ck, sealed_upto, next_cp
        while ck < len(cps) and cps[ck].position <= position:
            cp = cps[ck]
            ck += 1
            matches = cp.position == position and stored == cp.head
            if matches:
                report.checkpoints_checked += 1
                report.latest_checkpoint = cp
                sealed_upto = cp.position
            elif not any(p <= cp.position for p in found_at if p > sealed_upto):
                add(Finding(
                    Kind.CHAIN_REWRITTEN, sealed_upto + 1,
                    f"checkpoint #{cp.number} signed head {cp.head.hex()[:16]}… at position "
                    f"{cp.position} but the chain there differs: events between positions "
                    f"{sealed_upto + 1} and {cp.position} were altered and the chain table "
                    "rewritten to hide it", checkpoint=cp.number))
        next_cp = cps[ck].position if ck < len(cps) else _BEYOND

    while True:
        if ei >= len(ev_buf) and ci >= len(ch_buf):
            ev_buf, ei = next(event_pages, ()), 0
            ch_buf, ci = next(chain_pages, ()), 0
            if progress and ev_buf:
                progress(len(ev_buf))
            # Fast path, the usual case: both pages hold the same positions (the readers page
            # by the same position ranges) and every link holds.
            if ev_buf and len(ev_buf) == len(ch_buf) and \
                    [r[0] for r in ev_buf] == [r[0] for r in ch_buf]:
                done = 0
                while done < len(ev_buf):
                    held = _links_holding(link, previous, ev_buf, ch_buf, done, next_cp)
                    if not held:
                        break
                    done += held
                    previous = ch_buf[done - 1][3]
                    if ev_buf[done - 1][0] < next_cp:
                        break  # the page ended, or the next link failed
                    reached(ev_buf[done - 1][0], previous)
                if done:
                    pending = None
                    report.events += done
                    report.chain_entries += done
                    report.last_position = ev_buf[done - 1][0]
                    report.head = previous
                    ei = ci = done
                continue
        if ei >= len(ev_buf):
            ev_buf, ei = next(event_pages, ()), 0
            if progress and ev_buf:
                progress(len(ev_buf))
        if ci >= len(ch_buf):
            ch_buf, ci = next(chain_pages, ()), 0
        ev = ev_buf[ei] if ei < len(ev_buf) else None
        ch = ch_buf[ci] if ci < len(ch_buf) else None
        if ev is None and ch is None:
            break
        if ch is None or (ev is not None and ev[0] < ch[0]):
            assert ev is not None
            # An event the chain never recorded here.
            ei += 1
            report.events += 1
            position, oid, version = ev[0], ev[1], ev[2]
            elsewhere = locator.chained_at(oid, version)
            if elsewhere is not None and elsewhere != position:
                index = add(Finding(
                    Kind.REORDERED, position,
                    f"position {position} holds the event chained at position {elsewhere} "
                    f"({oid} v{version})", other_position=elsewhere))
            else:
                index = add(Finding(
                    Kind.INSERTED, position,
                    f"the events table holds an event the chain never recorded ({oid} "
                    f"v{version}): a row was inserted"))
            pending = (index, link(previous, ev))
            report.last_position = position
            continue
        if ev is None or ch[0] < ev[0]:
            # A chain entry whose event is gone from this position.
            ci += 1
            report.chain_entries += 1
            position, oid, version, stored = ch[0], ch[1], ch[2], bytes(ch[3])
            now_at = locator.stored_at(oid, version)
            if now_at is not None and now_at != position:
                add(Finding(
                    Kind.REORDERED, position,
                    f"the event chained at position {position} ({oid} v{version}) is stored at "
                    f"position {now_at}", other_position=now_at))
            else:
                add(Finding(
                    Kind.DELETED, position,
                    f"the chain records an event at position {position} ({oid} v{version}) that "
                    "the events table no longer holds: a row was deleted"))
            pending = None
            previous = stored
            report.last_position = position
            report.head = stored
            if position >= next_cp:
                reached(position, stored)
            continue
        # Both an event and a chain entry at this position.
        ei += 1
        ci += 1
        report.events += 1
        report.chain_entries += 1
        position, stored = ev[0], bytes(ch[3])
        computed = link(previous, ev)
        if computed != stored:
            if pending is not None and link(pending[1], ev) == stored:
                # The previous finding's event was genuine: its chain entry was altered or
                # removed, since this link verifies from the recomputed hash.
                index, _ = pending
                old = findings[index]
                findings[index] = replace(
                    old, kind=Kind.CHAIN_ALTERED, other_position=None,
                    message=f"the chain entry at position {old.position} was altered or "
                    "removed; the event there matches the rest of the chain")
                pending = None
            else:
                pending = (add(_mismatch(ev, ch, locator)), computed)
        else:
            pending = None
        previous = stored
        report.last_position = position
        report.head = stored
        if position >= next_cp:
            reached(position, stored)

    # Checkpoints beyond the end of the chain: the tail was cut off.
    last = report.last_position if report.last_position is not None else report.from_position - 1
    if ck < len(cps):
        cp = cps[-1]
        add(Finding(
            Kind.TRUNCATED, last + 1,
            f"checkpoint #{cp.number} vouches for position {cp.position} but the chain ends at "
            f"position {last}: events and chain entries after it were removed",
            checkpoint=cp.number))


def _mismatch(ev: EventRow, ch: ChainRow, locator: Locator) -> Finding:
    position, oid, version = ev[0], ev[1], ev[2]
    _, chained_oid, chained_version, _ = ch
    try:
        chained_version = int(chained_version)
    except (TypeError, ValueError):
        pass  # a tampered SQLite chain row: reported as it is, not crashed on
    if (oid, version) == (chained_oid, chained_version):
        return Finding(Kind.EDITED, position,
                       f"the event at position {position} ({oid} v{version}) differs from the "
                       "one chained there: the row was edited")
    elsewhere = locator.chained_at(oid, version)
    if elsewhere is not None and elsewhere != position:
        return Finding(Kind.REORDERED, position,
                       f"position {position} holds the event chained at position {elsewhere} "
                       f"({oid} v{version}) instead of {chained_oid} v{chained_version}",
                       other_position=elsewhere)
    moved = locator.stored_at(chained_oid, chained_version)
    if moved is not None and moved != position:
        return Finding(Kind.REORDERED, position,
                       f"the event chained at position {position} ({chained_oid} "
                       f"v{chained_version}) is stored at position {moved}",
                       other_position=moved)
    return Finding(Kind.EDITED, position,
                   f"the row at position {position} was replaced: it holds {oid} v{version}, "
                   f"the chain recorded {chained_oid} v{chained_version}")


def genesis_or(entry: tuple[int, bytes] | None) -> bytes:
    return entry[1] if entry else GENESIS
