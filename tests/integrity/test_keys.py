"""Signing keys: created readable by their owner only, never overwritten, refused when
others can read them; the public half is exported as PEM."""

from __future__ import annotations

import os
import stat

import pytest

from domain.integrity.errors import SigningKeyError
from domain.integrity.keys import (
    create_signing_key,
    key_id,
    load_public_key,
    load_public_key_file,
    load_signing_key,
    public_pem,
)


def test_a_key_is_created_for_its_owner_only_and_never_overwritten(tmp_path):
    path, public = create_signing_key(tmp_path / "keys" / "signing.pem")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert key_id(load_signing_key(path).public_key()) == key_id(public)
    with pytest.raises(SigningKeyError, match="refusing to overwrite"):
        create_signing_key(path)


def test_a_key_others_can_read_is_refused(tmp_path):
    path, _ = create_signing_key(tmp_path / "signing.pem")
    os.chmod(path, 0o644)
    with pytest.raises(SigningKeyError, match="chmod 600"):
        load_signing_key(path)


def test_missing_or_wrong_keys_say_so(tmp_path, monkeypatch):
    monkeypatch.setenv("LEDGER_SIGNING_KEY", str(tmp_path / "nowhere.pem"))
    with pytest.raises(SigningKeyError, match="ledger keys create"):
        load_signing_key()
    junk = tmp_path / "junk.pem"
    junk.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    junk.chmod(0o600)
    with pytest.raises(SigningKeyError, match="not a readable PEM"):
        load_signing_key(junk)
    with pytest.raises(SigningKeyError):
        load_public_key(b"not a key")


def test_the_public_key_round_trips_as_pem(tmp_path):
    _, public = create_signing_key(tmp_path / "signing.pem")
    exported = tmp_path / "public.pem"
    exported.write_bytes(public_pem(public))
    assert exported.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    assert key_id(load_public_key_file(exported)) == key_id(public)
    assert b"PRIVATE" not in exported.read_bytes()
