"""Evidence bundles: export the ledger up to a moment, verify the result offline.

A bundle is a ZIP archive (written by ``archive.StoredZipWriter``, byte-for-byte
reproducible) with, in this order:

``README.md``          for the inspector: what is inside and how to check it by hand
``manifest.json``      what was exported (positions, head, sealing checkpoint, SHA-256 of
                       every other member)
``events.jsonl``       every event up to the moment, one JSON object per line: the fields
                       that enter the canonical bytes (``position``, ``originator_id``,
                       ``originator_version``, ``topic``, ``state_base64`` — the stored
                       bytes), plus ``state_sha256`` and readable copies (``type``,
                       ``recorded_at``, ``state`` decoded) that the verifier checks against
                       the stored bytes
``tail.jsonl``         the events after the moment up to the first checkpoint that seals it,
                       without their contents: position, identity, topic, ``state_sha256``
``chain.jsonl``        the chain table as stored, through the sealing checkpoint
``checkpoints.jsonl``  the signed checkpoints up to the sealing one
``public-keys.pem``    the public key(s) that signed them (check the fingerprint against the
                       one the People's Committee published, or pass your own copy)

``verify_bundle`` needs no database: it rebuilds the archive from its members and compares
the bytes, checks the manifest, recomputes the chain with the same code as ``ledger verify``
and checks the checkpoints' signatures.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from domain.errors import ValidationError
from domain.integrity.archive import ArchiveTooLarge, StoredZipWriter, crc_and_size, file_chunks
from domain.integrity.canonical import (
    FORMAT,
    GENESIS,
    chain_hash_from_digest,
    state_digest,
    stored_bytes,
)
from domain.integrity.checkpoints import checkpoint_signature_valid
from domain.integrity.errors import BundleError, SigningKeyError
from domain.integrity.keys import key_id, load_public_key, public_pem, raw_public_bytes
from domain.integrity.operations import _store, _trusted
from domain.integrity.store import Checkpoint
from domain.integrity.verify import Report, check_checkpoints, walk

BUNDLE_FORMAT = "chidao-ledger-bundle-v1"
MEMBERS = ("README.md", "manifest.json", "events.jsonl", "tail.jsonl", "chain.jsonl",
           "checkpoints.jsonl", "public-keys.pem")


# -- reading the recorded time out of a stored event -------------------------------------------


def recorded_at(state: bytes, decode: Callable[[], Any] | None = None) -> datetime | None:
    """The event's ``timestamp`` from its stored JSON (the library's transcoding
    ``{"_type_": "datetime_iso", "_data_": ...}``), else via ``decode`` (the mapper); None
    when neither gives a moment. An edited row can hold anything there (the mapper then
    hands back whatever it parsed, e.g. a dict), and an export must carry it all the same
    for the verifier to report; a moment without an offset is taken as UTC, as written."""
    try:
        value = orjson.loads(state)["timestamp"]
        text = value["_data_"] if isinstance(value, dict) else value
        moment = datetime.fromisoformat(text)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        if decode is None:
            return None
        try:
            moment = decode()
        except Exception:
            return None
    if not isinstance(moment, datetime):
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _type_of(topic: str) -> str:
    return topic.rpartition(":")[2]


def _readable(state: bytes) -> Any:
    try:
        return orjson.loads(state)
    except orjson.JSONDecodeError:
        return None


# -- export ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportSummary:
    path: Path
    events: int
    last_position: int
    head: bytes
    tail: int
    checkpoints: int
    sealed_by: Checkpoint | None
    keys: tuple[str, ...]


def export_bundle(ledger: Any, out: str | os.PathLike[str], *, until: datetime | None = None,
                  public_keys: Sequence[Ed25519PublicKey] | None = None,
                  created_at: datetime | None = None,
                  progress: Callable[[int], None] | None = None,
                  total: Callable[[int], None] | None = None) -> ExportSummary:
    """Write the events recorded up to ``until`` (ledger time: the running maximum of
    recorded times along positions; None = everything) and the evidence for them."""
    from eventsourcing.persistence import StoredEvent

    store = _store(ledger)
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="ledger-bundle-") as tmp, \
            store.snapshot() as reader:
        files = {name: open(Path(tmp) / name, "w+b") for name in MEMBERS}
        try:
            if total is not None:
                total(reader.event_count())
            last, count = 0, 0
            done = False
            for page in reader.events(1):
                for position, oid, version, topic, raw in page:
                    state = stored_bytes(raw)

                    def decode(oid=oid, version=version, topic=topic, state=state) -> datetime:
                        from uuid import UUID

                        return ledger.mapper.to_domain_event(
                            StoredEvent(UUID(hex=oid), version, topic, state)).timestamp

                    at = recorded_at(state, decode)
                    if until is not None and at is not None and at > until:
                        done = True
                        break
                    files["events.jsonl"].write(orjson.dumps({
                        "position": position, "originator_id": oid,
                        "originator_version": version, "topic": topic,
                        "state_base64": base64.b64encode(state).decode("ascii"),
                        "state_sha256": state_digest(state).hex(),
                        "type": _type_of(topic),
                        "recorded_at": at.isoformat() if at else None,
                        "state": _readable(state),
                    }) + b"\n")
                    last, count = position, count + 1
                if progress is not None:
                    progress(len(page))
                if done:
                    break
            if count == 0:
                raise ValidationError(
                    "no event was recorded by then; nothing to export" if until
                    else "the ledger holds no events; nothing to export", field="until")
            checkpoints = reader.checkpoints()
            sealing = next((c for c in checkpoints
                            if c.position >= last and checkpoint_signature_valid(c)), None)
            end = max(last, sealing.position if sealing else 0)
            if until is None:  # everything: also chain entries whose events are gone
                head = reader.head()
                end = max(end, head[0] if head else 0)
            tail = 0
            for page in reader.events(last + 1, end):
                for position, oid, version, topic, raw in page:
                    files["tail.jsonl"].write(orjson.dumps({
                        "position": position, "originator_id": oid,
                        "originator_version": version, "topic": topic,
                        "state_sha256": state_digest(raw).hex(),
                    }) + b"\n")
                    tail += 1
            head = GENESIS
            for page in reader.chain(1, end):
                for position, oid, version, digest in page:
                    digest = bytes(digest)
                    files["chain.jsonl"].write(orjson.dumps({
                        "position": position, "originator_id": oid,
                        "originator_version": version, "hash": digest.hex(),
                    }) + b"\n")
                    if position <= last:
                        head = digest
            included = [c for c in checkpoints
                        if sealing is None or c.number <= sealing.number]
            for cp in included:
                files["checkpoints.jsonl"].write(orjson.dumps(cp.as_json()) + b"\n")
            keys = list(public_keys) if public_keys else []
            if not keys:
                seen: dict[bytes, Ed25519PublicKey] = {}
                for cp in included:
                    if cp.public_key not in seen:
                        seen[cp.public_key] = load_public_key(cp.public_key)
                keys = list(seen.values())
            for key in keys:
                files["public-keys.pem"].write(public_pem(key))
            key_ids = tuple(key_id(k) for k in keys)
            digests = {}
            for name in MEMBERS[2:]:
                files[name].flush()
                digests[name] = _file_sha256(files[name])
            moment = created_at or ledger.clock()
            manifest = {
                "format": BUNDLE_FORMAT, "chain_format": FORMAT,
                "created_at": moment.isoformat(),
                "until": until.isoformat() if until else None,
                "first_position": 1, "last_position": last, "events": count,
                "head": head.hex(), "tail_events": tail,
                "sealed_by": sealing.as_json() if sealing else None,
                "checkpoints": len(included), "public_keys": list(key_ids),
                "files": digests,
            }
            files["manifest.json"].write(
                orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n")
            files["README.md"].write(_readme(manifest).encode("utf-8"))
            partial = out.with_name(out.name + ".partial")
            with open(partial, "wb") as sink:
                writer = StoredZipWriter(sink)
                for name in MEMBERS:
                    crc, size = crc_and_size(files[name])
                    writer.add(name, size, crc, file_chunks(files[name]))
                writer.close()
            partial.replace(out)
        except ArchiveTooLarge as exc:
            raise BundleError(f"{exc}; export a shorter period with --until") from None
        finally:
            for handle in files.values():
                handle.close()
    return ExportSummary(out, count, last, head, tail, len(included), sealing, key_ids)


def _file_sha256(handle: BinaryIO) -> str:
    handle.seek(0)
    digest = hashlib.sha256()
    for chunk in file_chunks(handle):
        digest.update(chunk)
    handle.seek(0)
    return digest.hexdigest()


def _readme(manifest: dict[str, Any]) -> str:
    sealed = manifest["sealed_by"]
    seal = (f"checkpoint #{sealed['number']} (position {sealed['position']}, signed "
            f"{sealed['signed_at']}, key {sealed['key_id']})" if sealed else
            "NO checkpoint: the last events are chained but not signed")
    keys = "\n".join(f"- `{k}`" for k in manifest["public_keys"]) or "- (none)"
    return f"""# Evidence bundle of a chidao-ledger

Created {manifest['created_at']}; events recorded up to {manifest['until'] or 'the export'}.

* events: positions 1 to {manifest['last_position']} ({manifest['events']} events) in
  `events.jsonl`
* chain head at position {manifest['last_position']}: `{manifest['head']}`
* sealed by {seal}
* events after the period up to the sealing checkpoint (contents withheld, digests only):
  {manifest['tail_events']} in `tail.jsonl`
* signing key fingerprints (SHA-256 of the raw Ed25519 public key); compare them with the
  fingerprint the People's Committee published:
{keys}

## Checking it

With the tool, no database needed:

    ledger verify-bundle THIS.zip --public-key the-published-key.pem

By hand (any language with SHA-256, base64 and Ed25519), for each line of `events.jsonl`
then `tail.jsonl`, in order, starting with h = 32 zero bytes:

    d = SHA-256(base64-decode(state_base64))     (tail.jsonl gives d as state_sha256)
    c = i64(position) ‖ u32(len(id)) ‖ id ‖ i64(originator_version)
        ‖ u32(len(topic)) ‖ topic ‖ d
    h = SHA-256(h ‖ c)

(big-endian integers; `id` is `originator_id` in ASCII, `topic` in UTF-8). Each h must equal
the `hash` of the same position in `chain.jsonl`; the last one must equal the sealing
checkpoint's `head`. Its signature is Ed25519 over the UTF-8 text

    chidao-ledger checkpoint v1
    number: <number>
    position: <position>
    head: <head, hex>
    time: <signed_at>

(each line ending in a newline). `manifest.json` lists the SHA-256 of every other file.
The full description is docs/integrity.md of chidao-ledger.
"""


# -- offline verification --------------------------------------------------------------------------


@dataclass
class BundleReport:
    report: Report
    manifest: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # archive, manifest, readable copies
    sealed: bool = False
    keys_from_bundle: bool = True

    def ok(self, allow_unsealed: bool = False) -> bool:
        return self.report.ok and not self.problems and (self.sealed or allow_unsealed)

    def summary(self, allow_unsealed: bool = False) -> str:
        if not self.report.ok:
            return self.report.summary()
        if self.problems:
            more = len(self.problems) - 1
            return f"FAILED: {self.problems[0]}" + (f" (and {more} more)" if more else "")
        if not self.sealed and not allow_unsealed:
            last = self.manifest.get("last_position")
            return (f"FAILED: the events up to position {last} are chained but no signed "
                    "checkpoint in the bundle covers them")
        return (f"OK: {self.report.events} events and {self.report.checkpoints_checked} "
                f"checkpoint(s) verified; head {self.manifest.get('head', '')[:16]}… at "
                f"position {self.manifest.get('last_position')}")


class _HashSink:
    def __init__(self) -> None:
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return len(data)


def _member_bytes(handle: BinaryIO, info: zipfile.ZipInfo) -> Iterator[bytes]:
    """A stored member's bytes read straight from the file (no CRC check here, so that a
    damaged member can still be walked and the damage located)."""
    handle.seek(info.header_offset)
    header = handle.read(30)
    if len(header) != 30 or header[:4] != b"PK\x03\x04":
        raise BundleError(f"{info.filename}: damaged local header")
    name_length = int.from_bytes(header[26:28], "little")
    extra_length = int.from_bytes(header[28:30], "little")
    handle.seek(info.header_offset + 30 + name_length + extra_length)
    remaining = info.file_size
    while remaining > 0:
        chunk = handle.read(min(remaining, 1 << 20))
        if not chunk:
            raise BundleError(f"{info.filename}: truncated")
        remaining -= len(chunk)
        yield chunk


def _lines(handle: BinaryIO, info: zipfile.ZipInfo) -> Iterator[tuple[int, dict[str, Any]]]:
    buffer = b""
    number = 0
    for chunk in _member_bytes(handle, info):
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        for line in complete:
            number += 1
            yield number, _parse_line(info.filename, number, line)
    if buffer.strip():
        yield number + 1, _parse_line(info.filename, number + 1, buffer)


def _parse_line(member: str, number: int, line: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise BundleError(f"{member} line {number}: not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise BundleError(f"{member} line {number}: not a JSON object")
    return value


class _BundleLocator:
    """Identity → position maps for telling tampering apart, built on first use."""

    def __init__(self, handle: BinaryIO, infos: dict[str, zipfile.ZipInfo]) -> None:
        self.handle = handle
        self.infos = infos
        self._stored: dict[tuple[str, int], int] | None = None
        self._chained: dict[tuple[str, int], int] | None = None

    def _build(self) -> None:
        stored: dict[tuple[str, int], int] = {}
        chained: dict[tuple[str, int], int] = {}
        for name in ("events.jsonl", "tail.jsonl"):
            for _, row in _lines(self.handle, self.infos[name]):
                stored[(str(row.get("originator_id")), int(row.get("originator_version", 0)))] = \
                    int(row.get("position", 0))
        for _, row in _lines(self.handle, self.infos["chain.jsonl"]):
            chained.setdefault(
                (str(row.get("originator_id")), int(row.get("originator_version", 0))),
                int(row.get("position", 0)))
        self._stored, self._chained = stored, chained

    def stored_at(self, originator_id: str, version: int) -> int | None:
        if self._stored is None:
            self._build()
        assert self._stored is not None
        return self._stored.get((originator_id, version))

    def chained_at(self, originator_id: str, version: int) -> int | None:
        if self._chained is None:
            self._build()
        assert self._chained is not None
        return self._chained.get((originator_id, version))


def _pem_keys(data: bytes) -> list[Ed25519PublicKey]:
    keys = []
    marker = b"-----END PUBLIC KEY-----"
    for block in data.split(marker):
        if block.strip():
            try:
                keys.append(load_public_key(block + marker + b"\n", "public-keys.pem"))
            except SigningKeyError as exc:
                raise BundleError(str(exc)) from None
    return keys


def verify_bundle(path: str | os.PathLike[str], *,
                  trusted_keys: Sequence[Ed25519PublicKey | bytes] | None = None,
                  progress: Callable[[int], None] | None = None,
                  total: Callable[[int], None] | None = None) -> BundleReport:
    """Verify a bundle without any database (see the module doc)."""
    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except Exception as exc:  # zipfile raises many kinds on damaged headers
        raise BundleError(f"{path.name} is not a readable bundle: {exc}") from None
    with archive, open(path, "rb") as handle:
        infos_list = archive.infolist()
        names = tuple(i.filename for i in infos_list)
        if names != MEMBERS:
            raise BundleError(f"{path.name}: unexpected members {list(names)}; a bundle holds "
                              f"{', '.join(MEMBERS)}")
        infos = {i.filename: i for i in infos_list}
        result = BundleReport(report=Report(from_position=1))
        try:
            _check_archive(path, handle, infos_list, result)
        except Exception as exc:  # any damage to the headers: say so, then read what we can
            result.problems.append(f"the archive is damaged: {exc}")
        try:
            _verify_contents(path, infos, result, trusted_keys, progress, total)
        except BundleError as exc:
            result.problems.append(str(exc))
        except (OSError, ValueError, KeyError, TypeError, UnicodeError) as exc:
            result.problems.append(f"the bundle is damaged: {exc}")
    return result


def _check_archive(path: Path, handle: BinaryIO, infos: list[zipfile.ZipInfo],
                   result: BundleReport) -> None:
    """Rebuild the archive from its members and compare every byte; check each CRC-32."""
    handle.seek(0)
    original = hashlib.sha256()
    for chunk in file_chunks(handle):
        original.update(chunk)
    sink = _HashSink()
    writer = StoredZipWriter(sink)
    member_digests: dict[str, str] = {}
    for info in infos:
        crc, digest = 0, hashlib.sha256()

        def tapped(info=info, digest=digest) -> Iterator[bytes]:
            nonlocal crc
            for chunk in _member_bytes(handle, info):
                crc = zlib.crc32(chunk, crc)
                digest.update(chunk)
                yield chunk

        writer.add(info.filename, info.file_size, info.CRC, tapped())
        if crc != info.CRC:
            result.problems.append(f"{info.filename} was altered (its CRC-32 does not match)")
        member_digests[info.filename] = digest.hexdigest()
        if info.compress_type != zipfile.ZIP_STORED:
            result.problems.append(f"{info.filename} is compressed: the bundle was re-packed")
    writer.close()
    if sink.digest.digest() != original.digest():
        result.problems.append(
            f"{path.name} differs from the archive `ledger export` writes for these files "
            "(altered outside its files, or re-packed)")
    result.manifest = {"_member_sha256": member_digests}


def _verify_contents(path: Path, infos: dict[str, zipfile.ZipInfo], result: BundleReport,
                     trusted_keys: Sequence[Ed25519PublicKey | bytes] | None,
                     progress: Callable[[int], None] | None,
                     total: Callable[[int], None] | None) -> None:
    with open(path, "rb") as handle, open(path, "rb") as chain_handle, \
            open(path, "rb") as lookup_handle:
        _verify_opened(handle, chain_handle, lookup_handle, infos, result, trusted_keys,
                       progress, total)


def _verify_opened(handle: BinaryIO, chain_handle: BinaryIO, lookup_handle: BinaryIO,
                   infos: dict[str, zipfile.ZipInfo], result: BundleReport,
                   trusted_keys: Sequence[Ed25519PublicKey | bytes] | None,
                   progress: Callable[[int], None] | None,
                   total: Callable[[int], None] | None) -> None:
    """Events and chain are streamed side by side, each from its own file handle."""
    member_digests = result.manifest.pop("_member_sha256", {})
    try:
        manifest = orjson.loads(b"".join(_member_bytes(handle, infos["manifest.json"])))
    except orjson.JSONDecodeError as exc:
        raise BundleError(f"manifest.json is not JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"manifest.json does not describe a {BUNDLE_FORMAT} bundle")
    result.manifest = manifest
    if manifest.get("chain_format") != FORMAT:
        raise BundleError(f"chain format {manifest.get('chain_format')!r} is not {FORMAT}")
    for name, digest in (manifest.get("files") or {}).items():
        if member_digests.get(name) != digest:
            result.problems.append(f"{name} does not match the SHA-256 listed in manifest.json")
    bundle_keys = _pem_keys(b"".join(_member_bytes(handle, infos["public-keys.pem"])))
    result.keys_from_bundle = trusted_keys is None
    trusted = _trusted(trusted_keys) if trusted_keys is not None else \
        [raw_public_bytes(k) for k in bundle_keys]
    result.report.keys_trusted = trusted_keys is not None
    try:
        checkpoints = [Checkpoint.from_json(row)
                       for _, row in _lines(handle, infos["checkpoints.jsonl"])]
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"checkpoints.jsonl: malformed checkpoint ({exc})") from None
    valid, findings = check_checkpoints(checkpoints, trusted)
    result.report.findings.extend(findings)
    if total is not None:
        total(int(manifest.get("events", 0)) + int(manifest.get("tail_events", 0)))

    last_event = 0

    def event_rows() -> Iterator[list[tuple[int, str, int, str, bytes]]]:
        nonlocal last_event
        for name, full in (("events.jsonl", True), ("tail.jsonl", False)):
            page: list[tuple[int, str, int, str, bytes]] = []
            for number, row in _lines(handle, infos[name]):
                page.append(_event_row(name, number, row, full, result.problems))
                if full:
                    last_event = page[-1][0]
                if len(page) >= 5000:
                    yield page
                    page = []
            if page:
                yield page

    def chain_rows() -> Iterator[list[tuple[int, str, int, bytes]]]:
        page: list[tuple[int, str, int, bytes]] = []
        for number, row in _lines(chain_handle, infos["chain.jsonl"]):
            try:
                page.append((int(row["position"]), str(row["originator_id"]),
                             int(row["originator_version"]), bytes.fromhex(row["hash"])))
            except (KeyError, TypeError, ValueError) as exc:
                raise BundleError(f"chain.jsonl line {number}: malformed ({exc})") from None
            if len(page) >= 5000:
                yield page
                page = []
        if page:
            yield page

    walk(event_rows(), chain_rows(), start_hash=GENESIS, checkpoints=valid,
         locator=_BundleLocator(lookup_handle, infos), report=result.report, progress=progress,
         link=_digest_link)
    sealed_at = result.report.latest_checkpoint.position if result.report.latest_checkpoint else 0
    result.sealed = last_event > 0 and sealed_at >= last_event
    if manifest.get("last_position") != last_event:
        result.problems.append(f"manifest.json says the events end at position "
                               f"{manifest.get('last_position')}, events.jsonl at {last_event}")


def _digest_link(previous: bytes, row: tuple[int, str, int, str, bytes]) -> bytes:
    position, oid, version, topic, digest = row
    return chain_hash_from_digest(previous, position, oid, version, topic, digest)


def _event_row(member: str, number: int, row: dict[str, Any], full: bool,
               problems: list[str]) -> tuple[int, str, int, str, bytes]:
    try:
        position = int(row["position"])
        oid = str(row["originator_id"])
        version = int(row["originator_version"])
        topic = str(row["topic"])
        if full:
            state = base64.b64decode(row["state_base64"], validate=True)
            digest = state_digest(state)
            if row.get("state_sha256") != digest.hex():
                problems.append(f"{member} line {number}: state_sha256 is not the SHA-256 of "
                                "state_base64")
            readable = _readable(state)
            at = recorded_at(state)
            if (row.get("state") != readable or row.get("type") != _type_of(topic)
                    or row.get("recorded_at") != (at.isoformat() if at else None)):
                problems.append(f"{member} line {number} (position {position}): the readable "
                                "copy differs from the stored bytes (state_base64)")
        else:
            digest = bytes.fromhex(row["state_sha256"])
            if len(digest) != 32:
                raise ValueError("state_sha256 is not 32 bytes")
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise BundleError(f"{member} line {number}: malformed event ({exc})") from None
    return position, oid, version, topic, digest
