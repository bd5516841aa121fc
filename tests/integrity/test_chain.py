"""The chain as it is written and verified: attacks on the chain table and the checkpoints,
the write path, installation on an existing ledger, concurrent writers, status and proofs."""

from __future__ import annotations

import threading
from datetime import date

import pytest

from domain.application import Ledger
from domain.integrity import (
    CheckpointTimer,
    UnknownPosition,
    check_proof,
    integrity_status,
    make_checkpoint,
    proof,
    verify_ledger,
)
from domain.integrity.canonical import GENESIS, canonical_bytes, chain_hash, state_digest
from domain.integrity.checkpoints import sign_checkpoint
from domain.integrity.errors import IntegrityFailure
from domain.integrity.verify import Kind
from tests.behaviour.helpers import OPERATOR, import_plan
from tests.integrity.helpers import Attacker


@pytest.fixture
def plan_ledger(ledger):
    import_plan(ledger)  # 95 events in one transaction
    return ledger


@pytest.fixture
def attacker(store_url):
    attack = Attacker(store_url)
    yield attack
    attack.close()


def appoint(ledger, n: int) -> None:
    ledger.appoint_head(OPERATOR, "QNG-SNV", f"Người {n}", "Giám đốc Sở", date(2020, 1, n))
    ledger.record_head_left(OPERATOR, "QNG-SNV", f"Người {n}", date(2020, 1, n))


def test_canonical_bytes_are_fixed_by_the_format():
    """The documented layout, byte for byte (docs/integrity.md repeats this example)."""
    digest = state_digest(b'{"a":1}')
    raw = canonical_bytes(5, "0123456789abcdef0123456789abcdef", 2, "m:T.E", digest)
    assert raw == (bytes.fromhex("0000000000000005" "00000020") + b"0123456789abcdef" * 2
                   + bytes.fromhex("0000000000000002" "00000005") + b"m:T.E" + digest)
    # A text where bytes were stored hashes differently from those bytes.
    assert state_digest('{"a":1}') != digest  # type: ignore[arg-type]
    first = chain_hash(GENESIS, 5, "0123456789abcdef0123456789abcdef", 2, "m:T.E", b'{"a":1}')
    import hashlib

    assert first == hashlib.sha256(GENESIS + raw).digest()


def test_an_untouched_ledger_verifies_and_reports_its_sealing_window(plan_ledger, signing_key):
    report = verify_ledger(plan_ledger, trusted_keys=[signing_key.public_key()])
    assert report.ok and report.events == 95 and report.last_position == 95
    assert report.unsealed == (1, 95) and report.latest_checkpoint is None
    make_checkpoint(plan_ledger, signing_key)
    appoint(plan_ledger, 1)
    report = verify_ledger(plan_ledger, trusted_keys=[signing_key.public_key()])
    assert report.ok and report.checkpoints_checked == 1 and report.unsealed == (96, 97)


def test_a_rewritten_chain_table_is_caught_by_the_signed_checkpoint(plan_ledger, attacker,
                                                                     signing_key):
    make_checkpoint(plan_ledger, signing_key)  # position 95
    appoint(plan_ledger, 1)
    make_checkpoint(plan_ledger, signing_key)  # position 97
    appoint(plan_ledger, 2)
    attacker.edit_byte(96, 40, 0x20)
    attacker.rewrite_chain_from(96)  # every link is consistent again
    report = verify_ledger(plan_ledger, trusted_keys=[signing_key.public_key()])
    assert report.first is not None
    assert (report.first.kind, report.first.position) == (Kind.CHAIN_REWRITTEN, 96)
    assert report.first.checkpoint == 2


def test_after_the_last_checkpoint_only_the_links_protect(plan_ledger, attacker, signing_key):
    """The sealing window: an attacker who also rewrites the chain after the last checkpoint
    is not caught until a checkpoint made before the change is compared (none here)."""
    make_checkpoint(plan_ledger, signing_key)
    appoint(plan_ledger, 1)
    attacker.edit_byte(97, 40, 0x20)
    attacker.rewrite_chain_from(97)
    report = verify_ledger(plan_ledger, trusted_keys=[signing_key.public_key()])
    assert report.ok and report.unsealed == (96, 97)
    # ...and a new checkpoint vouches only for what is there now: that is the window.


def test_an_altered_chain_entry_is_told_apart_from_an_edited_event(plan_ledger, attacker):
    attacker.set_chain_hash(40, bytes(32))
    report = verify_ledger(plan_ledger)
    assert [(f.kind, f.position) for f in report.findings] == [(Kind.CHAIN_ALTERED, 40)]


def test_a_removed_chain_entry_is_told_apart_from_an_inserted_event(plan_ledger, attacker):
    attacker.delete_chain_entry(30)
    report = verify_ledger(plan_ledger)
    assert [(f.kind, f.position) for f in report.findings] == [(Kind.CHAIN_ALTERED, 30)]


def test_a_cut_off_tail_is_caught_by_the_checkpoint(plan_ledger, attacker, signing_key):
    make_checkpoint(plan_ledger, signing_key)
    attacker.truncate_from(90)
    report = verify_ledger(plan_ledger, trusted_keys=[signing_key.public_key()])
    assert report.first is not None
    assert (report.first.kind, report.first.position) == (Kind.TRUNCATED, 90)


def test_removed_or_forged_checkpoints_are_reported(plan_ledger, attacker, signing_key):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    for n in (1, 2, 3):
        appoint(plan_ledger, n)
        make_checkpoint(plan_ledger, signing_key)
    attacker.delete_checkpoint(2)
    report = verify_ledger(plan_ledger, trusted_keys=[signing_key.public_key()])
    assert [(f.kind, f.checkpoint) for f in report.findings] == [(Kind.CHECKPOINT_MISSING, 3)]

    intruder = Ed25519PrivateKey.generate()
    forged = sign_checkpoint(intruder, 4, 101, bytes(32), plan_ledger.clock())
    with plan_ledger.integrity.write() as tx:
        plan_ledger.integrity.insert_checkpoint(tx, forged)
    report = verify_ledger(plan_ledger, trusted_keys=[signing_key.public_key()])
    assert (Kind.CHECKPOINT_UNTRUSTED, 4) in [(f.kind, f.checkpoint) for f in report.findings]
    # Without a trusted key the forgery verifies against the key stored beside it, and
    # only the head comparison catches it; the report says its keys were not trusted.
    weak = verify_ledger(plan_ledger)
    assert not weak.keys_trusted
    assert Kind.CHAIN_REWRITTEN in [f.kind for f in weak.findings]
    # The forgery does not stop the ledger's own key from signing the next head.
    appoint(plan_ledger, 4)
    made = make_checkpoint(plan_ledger, signing_key)
    assert made is not None and (made.number, made.position) == (5, 103)


def test_verify_from_a_position(plan_ledger, attacker, signing_key):
    appoint(plan_ledger, 1)
    make_checkpoint(plan_ledger, signing_key)
    attacker.edit_byte(10, 50, 1)
    assert verify_ledger(plan_ledger, from_position=11).ok
    report = verify_ledger(plan_ledger, from_position=11)
    assert report.events == 97 - 10 and report.checkpoints_checked == 1
    report = verify_ledger(plan_ledger, from_position=5)
    assert report.first is not None and report.first.position == 10


def test_writes_stop_when_rows_were_removed_from_the_end(ledger, store_url, attacker):
    """SQLite reuses the highest rowid; the hook refuses rather than chain over a hole."""
    import_plan(ledger)
    attacker.delete(95)
    before = attacker.positions()
    if store_url.startswith("sqlite"):
        with pytest.raises(IntegrityFailure, match="rows were removed"):
            appoint(ledger, 1)
        assert attacker.positions() == before  # nothing stored
    else:  # PostgreSQL's sequence moves on: the write is chained after the gap
        appoint(ledger, 1)
    report = verify_ledger(ledger)
    assert report.first is not None and (report.first.kind, report.first.position) == \
        (Kind.DELETED, 95)


def test_installing_on_an_existing_ledger_chains_what_is_there(store_url, clock, attacker):
    first = Ledger(store_url, clock=clock)
    import_plan(first)
    first.close()
    attacker.sql(f"DROP TABLE {attacker.chain}")
    attacker.sql(f"DROP TABLE {attacker.checkpoints}")
    again = Ledger(store_url, clock=clock)  # as if the feature were new
    try:
        report = verify_ledger(again)
        assert report.ok and report.events == 95
        appoint(again, 1)
        assert verify_ledger(again).ok
    finally:
        again.close()


def test_concurrent_writers_keep_one_chain(store_url, clock, signing_key):
    setup = Ledger(store_url, clock=clock)
    import_plan(setup)
    errors: list[Exception] = []

    # Opened one after the other: the library's own table creation is not safe to race.
    apps = {code: Ledger(store_url, clock=clock) for code in ("QNG-SNV", "QNG-STP")}

    def writer(code: str) -> None:
        app = apps[code]
        try:
            for n in range(1, 11):
                app.appoint_head(OPERATOR, code, f"Người {n}", "Giám đốc Sở", date(2000 + n, 1, 1))
                app.record_head_left(OPERATOR, code, f"Người {n}", date(2000 + n, 1, 1))
        except Exception as exc:
            errors.append(exc)
        finally:
            app.close()

    threads = [threading.Thread(target=writer, args=(code,)) for code in apps]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        report = verify_ledger(setup)
        assert report.ok, report.summary()
        assert report.events == 95 + 2 * 20
        assert make_checkpoint(setup, signing_key) is not None
    finally:
        setup.close()


def test_checkpoints_number_up_and_refuse_to_vouch_for_tampering(plan_ledger, attacker,
                                                                  signing_key):
    first = make_checkpoint(plan_ledger, signing_key)
    assert first is not None and (first.number, first.position) == (1, 95)
    assert make_checkpoint(plan_ledger, signing_key) is None  # nothing new
    appoint(plan_ledger, 1)
    second = make_checkpoint(plan_ledger, signing_key)
    assert second is not None and (second.number, second.position) == (2, 97)
    appoint(plan_ledger, 2)
    attacker.edit_byte(98, 30, 4)
    with pytest.raises(IntegrityFailure, match="position 98"):
        make_checkpoint(plan_ledger, signing_key)
    status = integrity_status(plan_ledger)
    assert status["latest_checkpoint"]["number"] == 2
    assert status["head"]["position"] == 99 and status["events_after_latest_checkpoint"] == 2


def test_the_timer_makes_checkpoints_only_when_the_head_moved(plan_ledger, signing_key):
    timer = CheckpointTimer(plan_ledger, signing_key, interval=3600)
    assert timer.tick() is not None
    assert timer.tick() is None
    appoint(plan_ledger, 1)
    made = timer.tick()
    assert made is not None and made.position == 97 and timer.last_checkpoint == made
    timer.start()
    timer.stop()
    assert not timer._thread.is_alive()


def test_the_timer_keeps_the_failure(plan_ledger, attacker, signing_key):
    seen: list[Exception] = []
    timer = CheckpointTimer(plan_ledger, signing_key, on_error=seen.append)
    attacker.edit_byte(3, 3, 3)
    assert timer.tick() is None
    assert isinstance(timer.last_error, IntegrityFailure) and seen == [timer.last_error]


def test_a_proof_checks_one_event_against_a_checkpoint(plan_ledger, signing_key):
    appoint(plan_ledger, 1)
    data = proof(plan_ledger, 40)
    assert data["checkpoint"] is None  # not sealed yet
    ok, message = check_proof(data)
    assert not ok and "not covered" in message
    make_checkpoint(plan_ledger, signing_key)
    data = proof(plan_ledger, 40)
    assert len(data["path"]) == 97 - 40 and "state_base64" not in data["path"][0]
    assert check_proof(data, [signing_key.public_key()]) == (True, check_proof(data)[1])
    assert check_proof(data, [signing_key.public_key()])[0]
    altered = {**data, "event": {**data["event"], "originator_version": 2}}
    assert not check_proof(altered)[0]
    step = dict(data["path"][10])
    step["state_sha256"] = "00" * 32
    assert not check_proof({**data, "path": [*data["path"][:10], step, *data["path"][11:]]})[0]
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    assert not check_proof(data, [Ed25519PrivateKey.generate().public_key()])[0]
    with pytest.raises(UnknownPosition):
        proof(plan_ledger, 1000)
