"""A worker that dies in the middle of a page leaves nothing half-applied: after a restart the
tables are exactly those of an uninterrupted run. Both stores."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from domain.ids import task_id
from projections.runner import Runner
from tests.behaviour.helpers import OFFICE, OPERATOR, agency, import_plan
from tests.behaviour.projection_helpers import digests, live_generations, scratch_copies

ROOT = Path(__file__).resolve().parents[2]


class Crash(Exception):
    pass


@pytest.fixture
def busy_ledger(ledger, clock):
    """The 768 plan plus a few dozen later events touching the same entities, so that a
    restarted runner must reload entities folded before the crash."""
    import_plan(ledger)
    plan = ledger.find_directive("768/QĐ-UBND")
    ledger.appoint_head(OPERATOR, "QNG-SNV", "Nguyễn Văn An", "Giám đốc Sở", date(2020, 1, 1))
    for day, ordinal in enumerate(("1.1", "5.2", "5.3", "5.4", "1.1", "5.2"), start=1):
        clock.set(f"2022-03-{day:02d} 09:00")
        tid = task_id(plan.id, ordinal)
        ledger.report_progress(agency("QNG-SNV"), tid, summary="Đang làm", occurrence="2022")
        if ordinal in ("5.3", "5.4"):
            ledger.report_completion(agency("QNG-SNV"), tid, occurrence="2022",
                                     completed_on=date(2022, 3, day), summary="Xong")
            ledger.confirm_completion(OFFICE, tid, occurrence="2022")
    return ledger


def positions(ledger) -> dict[str, int]:
    from projections.queries import ReadModels

    return {p["name"]: p["position"] for p in ReadModels(ledger).status()["projections"]}


def test_an_exception_before_commit_rolls_the_whole_page_back(busy_ledger):
    pages = []

    def crash_on_third_page(names, first, last):
        pages.append((first, last))
        if len(pages) == 3:
            raise Crash(f"between the view writes and the commit of {first}-{last}")

    runner = Runner(busy_ledger, page_size=7, before_commit=crash_on_third_page)
    with pytest.raises(Crash):
        runner.catch_up()
    # Two pages committed, the third left no trace: positions and rows are those of a fold
    # of the first 14 events.
    assert set(positions(busy_ledger).values()) == {14}
    with scratch_copies(busy_ledger, until=14) as upto_14:
        assert digests(busy_ledger, live_generations(busy_ledger)) == digests(busy_ledger,
                                                                              upto_14)
    # The same runner carries on (its in-memory state was dropped with the page) ...
    runner.before_commit = None
    runner.catch_up()
    with scratch_copies(busy_ledger) as uninterrupted:
        assert digests(busy_ledger, live_generations(busy_ledger)) == digests(
            busy_ledger, uninterrupted)


def test_killing_the_worker_mid_page_and_restarting_gives_the_same_tables(busy_ledger,
                                                                          store_url):
    died = subprocess.run(
        [sys.executable, "-m", "tests.behaviour.projection_scripts", "crash", store_url, "5",
         "4"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert died.returncode == 137, died.stderr
    assert "dying inside the page 16-20" in died.stdout
    assert set(positions(busy_ledger).values()) == {15}
    # A new worker (a new process would start with an empty cache, like this runner) resumes
    # from position 15, reloading from the log the entities it needs.
    Runner(busy_ledger, page_size=5, cache_size=10).catch_up()
    head = busy_ledger.recorder.max_notification_id()
    assert set(positions(busy_ledger).values()) == {head}
    with scratch_copies(busy_ledger) as uninterrupted:
        assert digests(busy_ledger, live_generations(busy_ledger)) == digests(
            busy_ledger, uninterrupted)


def test_two_workers_never_apply_the_same_page_twice(busy_ledger):
    first, second = Runner(busy_ledger, page_size=9), Runner(busy_ledger, page_size=4)
    first.step()
    first.sync()  # both now hold position 9 ...
    second.step()  # ... the second commits 10-13 first
    group = list(first.attached.values())
    assert first._page(group) == 0  # the first one's compare-and-set fails: nothing written
    assert set(positions(busy_ledger).values()) == {13}
    for _ in range(50):  # then they take turns until the end
        if first.step() + second.step() == 0:
            break
    with scratch_copies(busy_ledger) as uninterrupted:
        assert digests(busy_ledger, live_generations(busy_ledger)) == digests(
            busy_ledger, uninterrupted)
