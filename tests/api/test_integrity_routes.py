"""The integrity routes: status and a proof that checks offline against a checkpoint."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from domain.integrity.operations import check_proof, make_checkpoint
from tests.api.conftest import ROLES


def test_status_and_proof_of_an_event(api):
    empty = api.get("inspector", "/v1/integrity")
    assert empty.status_code == 200
    head = empty.json()["head"]
    assert head["position"] == api.head()
    assert empty.json()["latest_checkpoint"] is None

    before = api.get("inspector", "/v1/integrity/proof/3").json()
    assert before["checkpoint"] is None  # in the sealing window: not signed evidence yet
    assert check_proof(before)[0] is False

    key = Ed25519PrivateKey.generate()
    checkpoint = make_checkpoint(api.ledger, key)
    status = api.get("lead", "/v1/integrity").json()
    assert status["latest_checkpoint"]["position"] == checkpoint.position
    assert status["events_after_latest_checkpoint"] == 0

    proof = api.get("inspector", "/v1/integrity/proof/3").json()
    ok, why = check_proof(proof, trusted_keys=[key.public_key()])
    assert ok, why
    assert proof["event"]["position"] == 3
    assert all("state_base64" not in step for step in proof["path"])  # digests only


def test_every_role_reads_and_unknown_positions_are_404(api):
    for role in ROLES:
        assert api.get(role, "/v1/integrity").status_code == 200
    missing = api.get("inspector", f"/v1/integrity/proof/{api.head() + 1000}")
    assert missing.status_code == 404
    assert missing.json()["type"].endswith("unknown-position")
    assert api.client.get("/v1/integrity").status_code == 401
