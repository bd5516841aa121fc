"""docs/integrity.md's by-hand recipe works: its script and its openssl command verify an
exported bundle, and its worked example matches the canonical bytes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from domain.integrity import make_checkpoint
from domain.integrity.bundle import export_bundle
from domain.integrity.canonical import GENESIS, canonical_bytes, chain_hash, state_digest
from domain.integrity.keys import public_pem
from tests.behaviour.helpers import import_plan

DOC = (Path(__file__).resolve().parents[2] / "docs" / "integrity.md").read_text("utf-8")


def write_recipe(directory: Path) -> None:
    marker = "# check_bundle.py"
    script = marker + DOC.split("```python\n" + marker, 1)[1].split("```", 1)[0]
    (directory / "check_bundle.py").write_text(script, "utf-8")


def test_the_worked_example_is_right():
    block = DOC.split("state `{\"a\":1}` (7 bytes) gives", 1)[1].split("```")[1]
    written = "".join(block.replace("(SHA-256 of the state)", "").split())
    raw = canonical_bytes(5, "0123456789abcdef0123456789abcdef", 2, "m:T.E",
                          state_digest(b'{"a":1}'))
    assert written == raw.hex()
    example = chain_hash(GENESIS, 5, "0123456789abcdef0123456789abcdef", 2, "m:T.E",
                         b'{"a":1}').hex()
    assert f"hash = {example}" in DOC


def test_the_by_hand_recipe_verifies_a_bundle(ledger, signing_key, tmp_path):
    import_plan(ledger)
    make_checkpoint(ledger, signing_key)
    bundle = tmp_path / "bundle.zip"
    export_bundle(ledger, bundle)
    write_recipe(tmp_path)
    done = subprocess.run([sys.executable, "check_bundle.py", str(bundle)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "chain OK through position 95; checkpoint #1" in done.stdout
    message = (tmp_path / "message.txt").read_bytes()
    signature = (tmp_path / "signature.bin").read_bytes()
    Ed25519PublicKey.verify(signing_key.public_key(), signature, message)  # raises if not
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed; the signature was checked with cryptography")
    (tmp_path / "published.pem").write_bytes(public_pem(signing_key.public_key()))
    checked = subprocess.run(
        ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", "published.pem", "-rawin",
         "-in", "message.txt", "-sigfile", "signature.bin"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0 and "Signature Verified Successfully" in checked.stdout


def test_the_recipe_fails_on_a_changed_event(ledger, signing_key, tmp_path):
    import zipfile

    import_plan(ledger)
    make_checkpoint(ledger, signing_key)
    bundle = tmp_path / "bundle.zip"
    export_bundle(ledger, bundle)
    with zipfile.ZipFile(bundle) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    members["events.jsonl"] = members["events.jsonl"].replace(b'"originator_version":1,',
                                                              b'"originator_version":2,', 1)
    changed = tmp_path / "changed.zip"
    with zipfile.ZipFile(changed, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    write_recipe(tmp_path)
    done = subprocess.run([sys.executable, "check_bundle.py", str(changed)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "position 1 does not match the chain" in done.stderr
