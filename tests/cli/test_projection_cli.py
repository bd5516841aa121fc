"""The read-model commands as an operator runs them: real processes, both stores."""

from __future__ import annotations

import json

from tests.cli.test_cli_basics import PLAN, run


def test_demo_records_a_sample_history_once_and_reports_from_the_read_models(tmp_path):
    url = f"sqlite:///{tmp_path}/demo.db"
    first = run(url, "demo")
    assert first.returncode == 0, first.stderr
    out = first.stdout
    assert "Imported 768/QĐ-UBND (26/08/2021)" in out and "Recorded a sample history" in out
    assert "Nghĩa vụ theo cơ quan chủ trì" in out and "QNG-STC" in out
    assert "Trách nhiệm người đứng đầu — Năm 2022" in out
    # The head replaced mid-2022: both appear, each with their own tenure.
    assert "Nguyễn Văn A" in out and "01/01/2020–30/06/2022" in out
    assert "Trần Thị B" in out and "01/07/2022–" in out
    assert "trễ hạn (hạn 25/12/2021, xong 10/01/2022)" in out
    status = json.loads(run(url, "projections", "status", "--json").stdout)
    assert {p["lag"] for p in status["projections"]} == {0}
    events = status["head"]

    second = run(url, "demo")
    assert second.returncode == 0, second.stderr
    assert "already in the ledger" in second.stdout and "Recorded" not in second.stdout
    assert json.loads(run(url, "projections", "status", "--json").stdout)["head"] == events
    history = json.loads(run(url, "history", "task", "768/QĐ-UBND#1.1", "--json").stdout)
    kinds = [e["type"] for e in history["events"]]
    assert kinds.count("Task.ExtensionRequested") == 1
    assert kinds.count("Task.CompletionConfirmed") == 2


def test_read_commands_answer_for_people_and_for_machines(store_url):
    assert run(store_url, "import", "plan", str(PLAN)).returncode == 0
    appointed = run(store_url, "agency", "appoint-head", "QNG-SNV", "--person", "Nguyễn Văn A",
                    "--position", "Giám đốc Sở", "--from", "1/1/2021")
    assert appointed.returncode == 0, appointed.stderr

    owed = run(store_url, "obligations", "--agency", "QNG-SNV", "--on", "1/6/2022", "--json")
    assert owed.returncode == 0, owed.stderr
    result = json.loads(owed.stdout)
    assert result["effective_on"] == "2022-06-01" and result["counts"]["overdue"] > 0
    lead = {(o["ordinal"], o["occurrence"]): o for o in result["obligations"]
            if o["role"] == "lead"}
    assert lead[("1.3", "once")]["original_due"] == "2022-06-30"
    people = run(store_url, "obligations", "--agency", "QNG-SNV", "--on", "1/6/2022")
    assert "Sở Nội vụ (QNG-SNV) — Giám đốc Sở: Nguyễn Văn A" in people.stdout
    assert "30/06/2022" in people.stdout and "quá hạn" in people.stdout

    record = json.loads(run(store_url, "accountability", "--period", "2022", "--agency",
                            "QNG-SNV", "--json").stdout)
    (head,) = record["heads"]
    assert head["person"] == "Nguyễn Văn A" and head["fallen_due"] == head["overdue"] == 6
    assert all(s["evidence"] for s in head["shortfalls"])
    shown = run(store_url, "accountability", "--period", "2022", "--agency", "QNG-SNV")
    assert "chứng cứ: #" in shown.stdout and "tạm thời" in shown.stdout

    history = run(store_url, "history", "agency", "QNG-SNV")
    assert "Agency.HeadAppointed" in history.stdout and "Nguyễn Văn A" in history.stdout
    summary = json.loads(run(store_url, "obligations", "--directive", "768/QĐ-UBND",
                             "--on", "1/6/2022", "--json").stdout)
    assert summary["directive"]["number"] == "768/QĐ-UBND"
    # Without --agency: every agency's counts, which together are the one directive's.
    overview = json.loads(run(store_url, "obligations", "--on", "1/6/2022", "--json").stdout)
    total: dict[str, int] = {}
    for row in overview["agencies"]:
        for status, n in row["counts"].items():
            total[status] = total.get(status, 0) + n
    assert total == summary["counts"] and total["overdue"] > 0
    table = run(store_url, "obligations", "--on", "1/6/2022")
    assert "Nghĩa vụ theo cơ quan chủ trì, ngày 01/06/2022" in table.stdout
    assert "QNG-SNV" in table.stdout

    rebuilt = run(store_url, "rebuild", "obligations", "--grace", "0", "--jobs", "2", "--json")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert json.loads(rebuilt.stdout)["projections"]["obligations"]["generation"] == 2
    assert run(store_url, "worker", "--once").returncode == 0
    status = json.loads(run(store_url, "projections", "status", "--json").stdout)
    assert {p["name"]: p["generation"] for p in status["projections"]} == {
        "obligations": 2, "accountability": 1, "audit": 1}


def test_read_command_errors_are_one_line_with_an_exit_code(tmp_path):
    url = f"sqlite:///{tmp_path}/x.db"
    assert run(url, "import", "plan", str(PLAN)).returncode == 0
    unknown = run(url, "obligations", "--agency", "QNG-NOPE")
    assert unknown.returncode == 1 and "unknown agency 'QNG-NOPE'" in unknown.stderr
    assert len(unknown.stderr.strip().splitlines()) == 1
    for args in (["accountability", "--period", "2024-Q5"], ["rebuild"],
                 ["rebuild", "nonsense"], ["history", "person", "x"],
                 ["obligations", "--agency", "QNG-SNV", "--as-of", "hôm qua"],
                 ["obligations", "--all"],
                 ["obligations", "--agency", "QNG-SNV", "--directive", "768/QĐ-UBND"]):
        result = run(url, *args)
        assert result.returncode == 2, (args, result.stderr)


def test_the_worker_keeps_the_projections_current_until_stopped(store_url):
    import os
    import signal
    import subprocess
    import time

    from tests.cli.test_cli_basics import LEDGER

    env = {**os.environ, "LEDGER_DATABASE_URL": store_url, "COLUMNS": "200"}
    assert run(store_url, "projections", "status").returncode == 0  # creates the tables
    worker = subprocess.Popen([LEDGER, "worker", "--poll", "0.1"], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert run(store_url, "import", "plan", str(PLAN)).returncode == 0
        deadline = time.monotonic() + 60
        while True:  # waits for the worker; the assertion below does not depend on timing
            status = json.loads(run(store_url, "projections", "status", "--json").stdout)
            if {p["lag"] for p in status["projections"]} == {0} or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert status["head"] == 95
        assert {p["position"] for p in status["projections"]} == {95}
    finally:
        worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=60)
    assert worker.returncode == 0, stderr
    assert "folded 95 events" in stderr and "ledger worker: stopped" in stderr
