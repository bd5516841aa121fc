"""CLI commands whose database connections die under them (the database restarting, an
administrator terminating sessions) while they open the ledger or halfway through: each
ends in one line and exit 3, or, when it got through between the kills (the library
retries a failed read), with its whole answer; never a traceback. An interrupted rebuild
leaves nothing in the way of the next one."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

LEDGER = str(Path(sys.executable).parent / "ledger")
VICTIM = "chidao-ledger-victim"  # the application_name (PGAPPNAME) of the commands run here


@pytest.mark.postgres
@pytest.mark.slow
def test_commands_whose_connections_are_killed_end_in_one_line_or_their_answer(
        pg_schema_url):
    import psycopg

    from drills.common import DRILL_AGENCY, prepare_ledger
    from tests.conftest import PG_URL

    prepare_ledger(pg_schema_url)
    env = {**os.environ, "LEDGER_DATABASE_URL": pg_schema_url, "COLUMNS": "200"}
    assert subprocess.run([LEDGER, "rebuild", "--all"], env=env, capture_output=True,
                          timeout=120).returncode == 0
    commands = [["events"], ["obligations"], ["obligations", "--agency", DRILL_AGENCY],
                ["history", "agency", DRILL_AGENCY], ["accountability", "--period", "2026"],
                ["verify"], ["projections", "status"], ["rebuild", "--all"],
                ["worker", "--once"]]
    stop = threading.Event()

    def kill_their_connections() -> None:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            while not stop.wait(0.02):
                conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                             "WHERE application_name = %s", (VICTIM,))

    outcomes = {}
    for command in commands:
        stop.clear()
        killer = threading.Thread(target=kill_their_connections)
        killer.start()
        try:
            done = subprocess.run([LEDGER, *command], env={**env, "PGAPPNAME": VICTIM},
                                  capture_output=True, text=True, timeout=300)
        finally:
            stop.set()
            killer.join()
        name = " ".join(command)
        outcomes[name] = done.returncode
        assert "Traceback" not in done.stderr, (name, done.stderr)
        assert done.returncode in (0, 3), (name, done.returncode, done.stderr)
        if done.returncode == 3:
            # (a progress bar may have been drawn before the error)
            assert done.stderr.splitlines()[-1].startswith(
                ("error: cannot open the ledger store: ", "error: the ledger store failed: ")
            ), (name, done.stderr)
            assert "error:" not in "".join(done.stderr.splitlines()[:-1])
        else:
            assert done.stdout.strip() and "error" not in done.stderr, (name, done.stderr)
            if command == ["verify"]:
                assert done.stdout.startswith("OK: "), done.stdout
    assert 3 in outcomes.values()  # (the killing did reach the commands)

    after = subprocess.run([LEDGER, "rebuild", "--all"], env=env, capture_output=True,
                           text=True, timeout=120)
    assert after.returncode == 0, after.stderr
    verified = subprocess.run([LEDGER, "verify"], env=env, capture_output=True, text=True,
                              timeout=120)
    assert verified.returncode == 0 and verified.stdout.startswith("OK: ")
