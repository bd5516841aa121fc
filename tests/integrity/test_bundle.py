"""Must show (issue 5): an exported bundle verifies offline; the same bundle with one
altered byte fails. Plus: export up to a moment, sealing, trusted keys, re-packed bundles."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, date, datetime, timedelta

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.integrity import make_checkpoint
from domain.integrity.archive import StoredZipWriter, crc_and_size, file_chunks
from domain.integrity.bundle import MEMBERS, export_bundle, recorded_at, verify_bundle
from domain.integrity.errors import BundleError
from tests.behaviour.helpers import OPERATOR, import_plan


@pytest.fixture
def bundle(ledger, signing_key, clock, tmp_path):
    """The sample plan plus a few later events, sealed by a checkpoint, exported."""
    import_plan(ledger)
    clock.set("2021-09-01 08:00")
    ledger.appoint_head(OPERATOR, "QNG-SNV", "Nguyễn Văn An", "Giám đốc Sở", date(2020, 1, 1))
    make_checkpoint(ledger, signing_key)
    clock.set("2021-10-01 08:00")
    ledger.record_head_left(OPERATOR, "QNG-SNV", "Nguyễn Văn An", date(2021, 9, 30))
    make_checkpoint(ledger, signing_key)
    path = tmp_path / "bundle.zip"
    summary = export_bundle(ledger, path)
    assert (summary.events, summary.last_position, summary.checkpoints) == (97, 97, 2)
    ledger.close()  # from here on, no database
    return path


def test_a_bundle_verifies_offline_and_any_altered_byte_fails(bundle, signing_key, tmp_path):
    trusted = [signing_key.public_key()]
    result = verify_bundle(bundle, trusted_keys=trusted)
    assert result.ok(), result.summary()
    assert result.sealed and result.report.events == 97 and result.report.checkpoints_checked == 2
    original = bundle.read_bytes()

    @settings(max_examples=150, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(offset=st.integers(0, len(original) - 1), bit=st.integers(0, 7))
    def one_altered_byte_fails(offset: int, bit: int) -> None:
        altered = bytearray(original)
        altered[offset] ^= 1 << bit
        copy = tmp_path / "altered.zip"
        copy.write_bytes(bytes(altered))
        try:
            outcome = verify_bundle(copy, trusted_keys=trusted)
        except BundleError:
            return  # not even readable as a bundle: a failure, as it should be
        assert not outcome.ok(), f"byte {offset} bit {bit} went unnoticed"

    one_altered_byte_fails()


def test_an_altered_event_is_located(bundle, signing_key, tmp_path):
    """A byte of one event's stored state, changed inside the archive: the CRC fails, and
    the walk still names the event's position."""
    data = bytearray(bundle.read_bytes())
    with zipfile.ZipFile(bundle) as archive:
        lines = archive.read("events.jsonl").split(b"\n")
        info = archive.getinfo("events.jsonl")
    target = orjson.loads(lines[49])  # position 50
    start = info.header_offset + 30 + len(b"events.jsonl") + sum(len(x) + 1 for x in lines[:49])
    at = data.index(b'"state_base64":"', start) + 20
    data[at] = ord("A") if data[at] != ord("A") else ord("B")
    copy = tmp_path / "altered.zip"
    copy.write_bytes(bytes(data))
    result = verify_bundle(copy, trusted_keys=[signing_key.public_key()])
    assert not result.ok()
    assert result.report.first is not None
    assert (result.report.first.position, result.report.first.kind.value) == \
        (target["position"], "edited")
    assert any("CRC" in p for p in result.problems)


def repack(bundle, change) -> bytes:
    """What someone who knows the format could do: change a member, update the manifest's
    digests, and write the archive again exactly as the exporter does."""
    import hashlib

    with zipfile.ZipFile(bundle) as archive:
        members = {name: archive.read(name) for name in MEMBERS}
    change(members)
    manifest = orjson.loads(members["manifest.json"])
    manifest["files"] = {name: hashlib.sha256(members[name]).hexdigest() for name in MEMBERS[2:]}
    members["manifest.json"] = orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n"
    out = io.BytesIO()
    writer = StoredZipWriter(out)
    for name in MEMBERS:
        handle = io.BytesIO(members[name])
        crc, size = crc_and_size(handle)
        writer.add(name, size, crc, file_chunks(handle))
    writer.close()
    return out.getvalue()


def test_a_repacked_bundle_with_a_changed_readable_copy_fails(bundle, signing_key, tmp_path):
    def change(members):
        lines = members["events.jsonl"].split(b"\n")
        row = orjson.loads(lines[10])
        row["state"]["name"] = "Sở bị sửa"
        lines[10] = orjson.dumps(row)
        members["events.jsonl"] = b"\n".join(lines)

    copy = tmp_path / "repacked.zip"
    copy.write_bytes(repack(bundle, change))
    result = verify_bundle(copy, trusted_keys=[signing_key.public_key()])
    assert result.report.ok and not result.ok()
    assert any("readable copy differs" in p and "position 11" in p for p in result.problems)


def test_a_repacked_bundle_with_a_forged_event_fails_on_the_signature(bundle, signing_key,
                                                                       tmp_path):
    import base64
    import hashlib

    from domain.integrity.canonical import chain_hash

    def change(members):
        events = [orjson.loads(x) for x in members["events.jsonl"].split(b"\n") if x]
        chain = [orjson.loads(x) for x in members["chain.jsonl"].split(b"\n") if x]
        original = base64.b64decode(events[20]["state_base64"])
        state = original.replace(b'"meta":{', b'"meta":{"note":"forged",', 1)
        assert state != original
        events[20]["state_base64"] = base64.b64encode(state).decode()
        events[20]["state_sha256"] = hashlib.sha256(state).hexdigest()
        events[20]["state"] = orjson.loads(state)
        previous = bytes(32)
        for event, entry in zip(events, chain, strict=True):  # recompute the whole chain
            previous = chain_hash(previous, event["position"], event["originator_id"],
                                  event["originator_version"], event["topic"],
                                  base64.b64decode(event["state_base64"]))
            entry["hash"] = previous.hex()
        members["events.jsonl"] = b"".join(orjson.dumps(e) + b"\n" for e in events)
        members["chain.jsonl"] = b"".join(orjson.dumps(c) + b"\n" for c in chain)

    copy = tmp_path / "forged.zip"
    copy.write_bytes(repack(bundle, change))
    result = verify_bundle(copy, trusted_keys=[signing_key.public_key()])
    assert not result.ok()
    assert result.report.first is not None
    assert result.report.first.kind.value == "chain-rewritten"
    assert result.report.first.position == 1  # nothing before the first checkpoint is vouched


def test_export_until_a_moment_keeps_later_events_as_digests(ledger, signing_key, clock,
                                                             tmp_path):
    import_plan(ledger)
    clock.set("2021-09-01 08:00")
    ledger.appoint_head(OPERATOR, "QNG-SNV", "Nguyễn Văn An", "Giám đốc Sở", date(2020, 1, 1))
    clock.set("2021-10-01 08:00")
    ledger.record_head_left(OPERATOR, "QNG-SNV", "Nguyễn Văn An", date(2021, 9, 30))
    path = tmp_path / "until.zip"
    with pytest.raises(BundleError.__mro__[1]):  # nothing recorded that early
        export_bundle(ledger, path, until=clock.now - timedelta(days=400))
    make_checkpoint(ledger, signing_key)
    summary = export_bundle(ledger, path, until=clock.now - timedelta(days=10))
    assert (summary.last_position, summary.tail) == (96, 1)
    with zipfile.ZipFile(path) as archive:
        events = archive.read("events.jsonl").decode()
        tail = [orjson.loads(x) for x in archive.read("tail.jsonl").splitlines()]
    assert "Nguyễn Văn An" in events and "HeadLeft" not in events
    assert tail[0]["position"] == 97 and "state_base64" not in tail[0]
    result = verify_bundle(path, trusted_keys=[signing_key.public_key()])
    assert result.ok(), result.summary()


def test_an_unsealed_bundle_fails_unless_allowed(ledger, signing_key, tmp_path):
    import_plan(ledger)
    path = tmp_path / "unsealed.zip"
    export_bundle(ledger, path)
    result = verify_bundle(path)
    assert result.report.ok and result.keys_from_bundle
    assert not result.ok() and "no signed checkpoint" in result.summary()
    assert result.ok(allow_unsealed=True)


def test_a_bundle_signed_by_another_key_fails_against_the_published_key(bundle):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    published = Ed25519PrivateKey.generate().public_key()
    assert verify_bundle(bundle).ok()  # against the key inside the bundle...
    result = verify_bundle(bundle, trusted_keys=[published])  # ...but not the published one
    assert not result.ok()
    assert result.report.first is not None
    assert result.report.first.kind.value == "checkpoint-untrusted"


def test_what_is_not_a_bundle_is_refused(tmp_path):
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip")
    with pytest.raises(BundleError):
        verify_bundle(junk)
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("events.jsonl", b"")
    with pytest.raises(BundleError, match="unexpected members"):
        verify_bundle(other)


def test_an_event_whose_recorded_time_was_edited_away_is_exported_and_reported(
        ledger, store_url, tmp_path):
    """An edit that leaves a stored event without a readable time (here its timestamp's
    ``_data_`` key renamed, so the mapper hands back a dict) is exported all the same, and
    the bundle fails offline at that event."""
    from domain.integrity.verify import Kind
    from tests.behaviour.helpers import import_plan
    from tests.integrity.helpers import Attacker

    import_plan(ledger)
    attacker = Attacker(store_url)
    try:
        assert b'"_data_"' in bytes(attacker.row(5)[3])
        attacker.rewrite(5, lambda state: state.replace(b'"_data_"', b'"_dXta_"', 1))
    finally:
        attacker.close()
    bundle = tmp_path / "tampered.zip"
    export_bundle(ledger, bundle)
    offline = verify_bundle(bundle)
    assert offline.report.first is not None
    assert (offline.report.first.position, offline.report.first.kind) == (5, Kind.EDITED)


def test_recorded_at_gives_a_moment_or_nothing():
    aware = b'{"timestamp":{"_type_":"datetime_iso","_data_":"2024-07-09T21:09:58+00:00"}}'
    naive = b'{"timestamp":{"_type_":"datetime_iso","_data_":"2024-07-09T21:09:58"}}'
    renamed = b'{"timestamp":{"_type_":"datetime_iso","_dXta_":"2024-07-09T21:09:58"}}'
    moment = datetime(2024, 7, 9, 21, 9, 58, tzinfo=UTC)
    assert recorded_at(aware) == moment
    assert recorded_at(naive) == moment
    assert recorded_at(renamed, lambda: {"_type_": "datetime_iso"}) is None
    assert recorded_at(renamed, lambda: moment) == moment
    assert recorded_at(b"not json") is None
