"""The ``ledger`` command as an operator runs it: real processes, both stores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

LEDGER = str(Path(sys.executable).parent / "ledger")
SAMPLES = Path(__file__).resolve().parents[2] / "cli" / "samples"
PLAN = SAMPLES / "quang-ngai-768-QD-UBND-2021-ke-hoach-cchc.txt"
DIRECTIVE = SAMPLES / "quang-ngai-1864-UBND-TTHC-2024.yaml"


def run(url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "LEDGER_DATABASE_URL": url, "COLUMNS": "200"}
    return subprocess.run([LEDGER, *args], capture_output=True, text=True, env=env, timeout=120)


def test_import_plan_reports_45_tasks_then_refuses_a_second_import(store_url):
    first = run(store_url, "import", "plan", str(PLAN))
    assert first.returncode == 0, first.stderr
    assert "45 tasks" in first.stdout and "768/QĐ-UBND" in first.stdout

    journal = run(store_url, "events", "--json", "--limit", "1000")
    assert journal.returncode == 0, journal.stderr
    entries = [json.loads(line) for line in journal.stdout.splitlines()]
    assert sum(e["type"] == "Task.Assigned" for e in entries) == 45

    second = run(store_url, "import", "plan", str(PLAN))
    assert second.returncode == 1
    assert second.stdout == ""
    assert len(second.stderr.strip().splitlines()) == 1
    assert "already in the ledger" in second.stderr and "nothing was stored" in second.stderr
    again = run(store_url, "events", "--json", "--limit", "1000")
    assert len(again.stdout.splitlines()) == len(entries)


def test_events_after_a_position(store_url):
    run(store_url, "import", "plan", str(PLAN))
    after = run(store_url, "events", "--after", "90", "--json")
    positions = [json.loads(line)["position"] for line in after.stdout.splitlines()]
    assert positions == [91, 92, 93, 94, 95]


def test_show_directive_and_task(store_url):
    run(store_url, "import", "plan", str(PLAN))
    shown = run(store_url, "directive", "show", "768/QĐ-UBND", "--json")
    assert shown.returncode == 0, shown.stderr
    info = json.loads(shown.stdout)
    assert info["tasks"] == 45 and info["issued_on"] == "2021-08-26"
    task = run(store_url, "task", "show", "768/QĐ-UBND#6.8")
    assert task.returncode == 0, task.stderr
    assert "Quý IV năm 2021" in task.stdout and "31/12/2021" in task.stdout


def test_import_directive_yaml(store_url):
    done = run(store_url, "import", "directive", str(DIRECTIVE))
    assert done.returncode == 0, done.stderr
    assert "1864/UBND-TTHC" in done.stdout and "4 tasks" in done.stdout


def test_bad_files_give_one_line_errors_and_store_nothing(store_url, tmp_path):
    broken = tmp_path / "broken.txt"
    broken.write_text(PLAN.read_text("utf-8").replace("| Sở Nội vụ |", "| Sở Nội vu |", 1),
                      "utf-8")
    result = run(store_url, "import", "plan", str(broken))
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "row 134, column 'Cơ quan chủ trì': unknown agency" in result.stderr

    nfd = tmp_path / "nfd.txt"
    nfd.write_text(unicodedata.normalize("NFD", PLAN.read_text("utf-8")), "utf-8")
    result = run(store_url, "import", "plan", str(nfd))
    assert result.returncode == 1 and "--nfc" in result.stderr

    missing = run(store_url, "import", "plan", str(tmp_path / "nope.txt"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr

    assert run(store_url, "events", "--json").stdout == ""
    ok = run(store_url, "import", "plan", "--nfc", str(nfd))
    assert ok.returncode == 0, ok.stderr


def test_unknown_directive_and_bad_store_url(store_url):
    result = run(store_url, "directive", "show", "999/KH-UBND")
    assert result.returncode == 1 and "no directive numbered 999/KH-UBND" in result.stderr
    bad = run("mysql://x/y", "events")
    assert bad.returncode == 2 and "unsupported scheme" in bad.stderr


@pytest.mark.parametrize("args", [("events",), ("serve", "--workers", "2", "--port", "1")])
def test_an_unreachable_postgresql_store_gives_one_line_and_exit_3(args):
    """Nothing listens on port 1: the connection that serialises table creation is the first
    to fail, and its psycopg error must read as the store's, not as a traceback (nor, for
    `serve`, as a traceback per worker process and then exit 0)."""
    result = run("postgresql://postgres:not-shown@127.0.0.1:1/ledger", *args)
    assert result.returncode == 3
    assert result.stderr.startswith("error: cannot open the ledger store: ")
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr
    assert "not-shown" not in result.stderr


def test_demo_runs_twice_without_error(tmp_path):
    url = f"sqlite:///{tmp_path}/demo.db"
    first = run(url, "demo")
    assert first.returncode == 0, first.stderr
    assert "Imported 768/QĐ-UBND" in first.stdout and "QNG-STC" in first.stdout
    second = run(url, "demo")
    assert second.returncode == 0, second.stderr
    assert "already in the ledger" in second.stdout


@pytest.mark.parametrize("args", [["import", "plan"], ["task", "show"], ["nonsense"]])
def test_usage_errors_exit_2(args, tmp_path):
    result = run(f"sqlite:///{tmp_path}/x.db", *args)
    assert result.returncode == 2


def test_the_command_list_wraps_each_summary_to_the_screen(tmp_path):
    """``ledger --help`` lists each command with its docstring's first paragraph, refilled
    to the terminal's width: the docstrings' own line breaks had cut the summaries
    mid-sentence ("...then switch readers" / "over atomically")."""
    listing = run(f"sqlite:///{tmp_path}/ledger.db", "--help")
    assert listing.returncode == 0, listing.stderr
    rebuild = next(line for line in listing.stdout.splitlines() if " rebuild " in line)
    assert "then switch readers over atomically" in rebuild
    worker = next(line for line in listing.stdout.splitlines() if " worker " in line)
    assert "interrupted (SIGINT/SIGTERM); also seal" in worker
