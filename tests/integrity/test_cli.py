"""The integrity commands as an operator and an inspector run them: real processes, both
stores. Verification failures exit 4 with one line on stderr."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.integrity.helpers import Attacker

LEDGER = str(Path(sys.executable).parent / "ledger")
PLAN = Path(__file__).resolve().parents[2] / "cli" / "samples" / \
    "quang-ngai-768-QD-UBND-2021-ke-hoach-cchc.txt"


@pytest.fixture
def run(store_url, tmp_path):
    key = tmp_path / "keys" / "signing.pem"

    def invoke(*args: str, url: str | None = store_url) -> subprocess.CompletedProcess:
        env = {**os.environ, "COLUMNS": "300", "LEDGER_SIGNING_KEY": str(key)}
        env.pop("LEDGER_PUBLIC_KEY", None)
        env["LEDGER_DATABASE_URL"] = url or "postgresql://nobody@127.0.0.1:9/none"
        return subprocess.run([LEDGER, *args], capture_output=True, text=True, env=env,
                              timeout=120, cwd=tmp_path)

    invoke.key = key  # type: ignore[attr-defined]
    return invoke


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, result.stderr
    return result


def test_operator_and_inspector_round_trip(run, store_url, tmp_path):
    ok(run("import", "plan", str(PLAN)))
    created = ok(run("keys", "create"))
    assert "Key id:" in created.stdout
    assert stat.S_IMODE(run.key.stat().st_mode) == 0o600
    assert "PRIVATE" not in created.stdout + created.stderr
    public = tmp_path / "published.pem"
    ok(run("keys", "export-public", "--out", str(public)))
    assert public.read_text().startswith("-----BEGIN PUBLIC KEY-----")

    made = json.loads(ok(run("checkpoint", "--json")).stdout)
    assert made["created"] and made["checkpoint"]["position"] == 95
    assert "Nothing new" in ok(run("checkpoint")).stdout

    verified = ok(run("verify", "--public-key", str(public)))
    assert verified.stdout.startswith("OK: 95 events")
    report = json.loads(ok(run("verify", "--json", "--from", "50")).stdout)
    assert report["ok"] and report["events"] == 46 and report["keys_trusted"]

    bundle = tmp_path / "bundle.zip"
    exported = ok(run("export", "--until", "31/12/2030", "--out", str(bundle)))
    assert "SHA-256 of the bundle" in exported.stdout
    # The inspector's machine: no database at all.
    inspected = ok(run("verify-bundle", str(bundle), "--public-key", str(public), url=None))
    assert inspected.stdout.startswith("OK: 95 events and 1 checkpoint(s) verified")

    altered = bytearray(bundle.read_bytes())
    altered[len(altered) // 2] ^= 0x10
    broken = tmp_path / "broken.zip"
    broken.write_bytes(bytes(altered))
    failed = run("verify-bundle", str(broken), "--public-key", str(public), url=None)
    assert failed.returncode == 4
    assert len(failed.stderr.strip().splitlines()) == 1 and "FAILED" in failed.stderr


def test_verify_names_the_first_tampered_position(run, store_url):
    ok(run("import", "plan", str(PLAN)))
    attacker = Attacker(store_url)
    try:
        attacker.swap(12, 40)
        attacker.edit_byte(60, 100, 1)
    finally:
        attacker.close()
    failed = run("verify")
    assert failed.returncode == 4
    assert len(failed.stderr.strip().splitlines()) == 1
    assert "FAILED at position 12: reordered" in failed.stderr
    assert "(and 2 more findings)" in failed.stderr
    assert "60" in failed.stdout and "edited" in failed.stdout  # the details
    as_json = run("verify", "--json")
    assert as_json.returncode == 4
    report = json.loads(as_json.stdout)
    assert [(f["position"], f["kind"]) for f in report["findings"]] == \
        [(12, "reordered"), (40, "reordered"), (60, "edited")]
    ok(run("keys", "create"))
    refused = run("checkpoint")  # never signs over tampering
    assert refused.returncode == 1 and "not signing: FAILED at position 12" in refused.stderr


def test_replay_and_diff(run):
    ok(run("import", "plan", str(PLAN)))
    state = json.loads(ok(run("replay", "--until", "2030-01-01T00:00+07:00", "--json")).stdout)
    assert len(state["tasks"]) == 45 and state["position"] == 95
    people = ok(run("replay", "--until", "31/12/2030"))
    assert "768/QĐ-UBND#1.3" in people.stdout and "Sở Nội vụ" in people.stdout
    steps = ok(run("replay", "--until", "31/12/2030", "--step", "--json")).stdout.splitlines()
    assert len(steps) == 95 and json.loads(steps[0])["before"] is None
    one = ok(run("replay", "--until", "31/12/2030", "--step", "--entity", "768/QĐ-UBND#1.3"))
    assert one.stdout.count("Task.Assigned") == 1
    changes = json.loads(ok(run("diff", "--from", "1/1/2000", "--to", "31/12/2030",
                                "--json")).stdout)
    assert changes["events"]["Task.Assigned"] == 45 and changes["positions"] == [1, 95]
    bad = run("diff", "--from", "yesterday", "--to", "31/12/2030")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def _json_edit(edit):
    def change(state: bytes) -> bytes:
        data = orjson.loads(state)
        edit(data)
        return orjson.dumps(data)
    return change


FOLDING = [["replay", "--until", "31/12/2030"], ["replay", "--until", "31/12/2030", "--step"],
           ["rebuild", "--all"]]
DAMAGES = {  # the change, what the error says, which commands stop at it
    "truncated": (lambda state: state[: len(state) // 2], "cannot be read: ",
                  [["events", "--after", "40"], *FOLDING]),
    "time-renamed": (_json_edit(lambda d: d["timestamp"].update(_dXta_=d["timestamp"].pop(
        "_data_"))), "its recorded time is not a moment", [["events", "--after", "40"],
                                                          *FOLDING]),
    "field-dropped": (_json_edit(lambda d: d.pop("ordinal")), "its field 'ordinal' is missing",
                      [["events", "--after", "40"], *FOLDING]),
    # Still a readable event (the journal lists it), but not one its aggregate can fold.
    "out-of-place": (_json_edit(lambda d: d.update(originator_topic="domain.agency:Agency")),
                     "cannot be applied", FOLDING),
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_row_that_no_longer_reads_stops_every_reader_at_it_with_exit_4(run, store_url,
                                                                          damage):
    """Replays, the journal and rebuilds fold every event; an edited row must stop them with
    one line naming it (exit 4, as a failed verification), never a traceback or a silent
    skip."""
    ok(run("import", "plan", str(PLAN)))
    change, why, commands = DAMAGES[damage]
    attacker = Attacker(store_url)
    try:
        attacker.rewrite(60, change)
    finally:
        attacker.close()
    assert ok(run("events", "--after", "40", "--limit", "19")).stdout.count("Task.Assigned")
    for command in commands:
        result = run(*command)
        assert result.returncode == 4, (command, result.stdout, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert lines[-1].startswith("error: the stored event "), (command, lines)
        assert why in lines[-1] and "Task.Assigned" in lines[-1], (command, lines)
        assert "Traceback" not in result.stderr, command
    verified = run("verify")
    assert verified.returncode == 4 and "FAILED at position 60: edited" in verified.stderr


def test_a_row_whose_topic_was_edited_stops_every_reader_with_exit_4(run, store_url):
    """The topic column names the kind of event: edited to name none, it was a TopicError
    traceback in the replays and a row the worker and rebuilds skipped in silence."""
    ok(run("import", "plan", str(PLAN)))
    attacker = Attacker(store_url)
    try:
        attacker.sql(f"UPDATE {attacker.events} SET topic = %s WHERE {attacker.pos} = %s",
                     ("domain.task:Task.Nothing", 60))
    finally:
        attacker.close()
    for command in [["events", "--after", "40"], *FOLDING]:
        result = run(*command)
        assert result.returncode == 4, (command, result.stdout, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert lines[-1].startswith("error: the stored event at position 60 "), (command, lines)
        assert "names no kind of event this ledger knows" in lines[-1], (command, lines)
        assert "Traceback" not in result.stderr, command
