"""``ledger rebuild --all`` while another process keeps writing and a worker keeps the live
copies current: readers get answers throughout, from the old copy and then the new one, and
the rebuilt projections equal a fold from zero afterwards. Both stores (PostgreSQL is the one
that matters in production)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

import pytest

from domain.application import Ledger
from domain.ids import task_id
from projections.queries import ReadModels
from projections.rebuild import RebuildInProgress, claim_generations, drop_generation, rebuild
from projections.runner import Runner, projections_named, run_worker
from tests.behaviour.helpers import OPERATOR, agency, import_plan
from tests.behaviour.projection_helpers import digests, live_generations, scratch_copies
from tests.conftest import wait_until

ROOT = Path(__file__).resolve().parents[2]
LEDGER = str(Path(sys.executable).parent / "ledger")


@pytest.mark.slow
def test_rebuild_all_while_another_process_writes(ledger, store_url, tmp_path):
    import_plan(ledger)
    ledger.appoint_head(OPERATOR, "QNG-SNV", "Nguyễn Văn An", "Giám đốc Sở", date(2020, 1, 1))
    Runner(ledger).catch_up()
    old = live_generations(ledger)
    stop_file = tmp_path / "stop"
    writer = subprocess.Popen(
        [sys.executable, "-m", "tests.behaviour.projection_scripts", "writer", store_url,
         str(stop_file)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stop = threading.Event()
    reads: list[tuple[bool, int, int, int]] = []
    errors: list[str] = []
    answered_while_building = threading.Event()

    # Built one after another: the library's table creation is not safe to race on PostgreSQL.
    reader_ledger, worker_ledger = Ledger(store_url), Ledger(store_url)

    def reader() -> None:
        own = reader_ledger
        models = ReadModels(own)
        try:
            while not stop.is_set():
                try:
                    building = any(p["rebuilding"] for p in models.status()["projections"])
                    owed = models.obligations("QNG-SNV")
                    record = models.accountability("2025", "QNG-SNV")
                    history = models.history("task", "768/QĐ-UBND#1.1")
                    assert owed["obligations"] and history["events"]
                    assert record["heads"][0]["person"] == "Nguyễn Văn An"
                    reads.append((building, owed["as_of"]["generation"],
                                  record["as_of"]["generation"],
                                  history["as_of"]["generation"]))
                    if building:
                        answered_while_building.set()
                except Exception as exc:  # every failure is recorded and fails the test
                    errors.append(repr(exc))
        finally:
            own.close()

    def worker() -> None:
        own = worker_ledger
        try:
            run_worker(own, stop=stop, poll=0.05, page_size=10)
        finally:
            own.close()

    threads = [threading.Thread(target=reader), threading.Thread(target=worker)]
    for thread in threads:
        thread.start()
    try:
        head_at_start = ledger.recorder.max_notification_id()

        def hold_until_overlapping(done: int, head: int) -> None:
            # The rebuild goes on only once readers have had answers while the new copy was
            # being built and the writer has stored events since the rebuild began.
            wait_until(lambda: answered_while_building.is_set() or errors
                       or not threads[0].is_alive())
            wait_until(lambda: ledger.recorder.max_notification_id() > head_at_start
                       or writer.poll() is not None)

        rebuilder = Ledger(store_url)
        try:
            first = rebuild(rebuilder, page_size=20, progress=hold_until_overlapping, grace=0.2)
        finally:
            rebuilder.close()
        assert {name: r["old_generation"] for name, r in first.items()} == old
        assert all(r["position"] > head_at_start for r in first.values())

        # The same through the command line, the writer still writing.
        env = {**os.environ, "LEDGER_DATABASE_URL": store_url, "COLUMNS": "200"}
        done = subprocess.run([LEDGER, "rebuild", "--all", "--page-size", "25"], env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert "obligations" in done.stdout and "live" in done.stdout
        wait_until(lambda: len(reads) > 0 and reads[-1][1] > first["obligations"]["generation"])
    finally:
        stop_file.write_text("stop")
        written = int(writer.communicate(timeout=120)[0].strip() or 0)
        stop.set()
        for thread in threads:
            thread.join(timeout=120)

    assert errors == []
    assert written > 0
    assert any(building for building, *_ in reads)
    seen = {generation for _, *generations in reads for generation in generations}
    assert seen >= {old["obligations"], first["obligations"]["generation"]}
    Runner(ledger).catch_up()
    live = live_generations(ledger)
    assert live["obligations"] == first["obligations"]["generation"] + 1
    with scratch_copies(ledger) as from_zero:
        assert digests(ledger, live) == digests(ledger, from_zero)


def test_a_replaced_generation_is_dropped_with_the_tables_other_code_gave_it(ledger):
    """Older code running again after a rollback drops the generation newer code built,
    tables it does not know included (and the reverse); nothing of another generation or
    another projection goes with them."""
    import_plan(ledger)
    from projections.db import Db

    db = Db(ledger)
    Runner(ledger).catch_up()
    old = live_generations(ledger)["obligations"]
    strays = {"newer": f"obl_newer_layout_g{old}", "later": f"obl_newer_layout_g{old}1",
              "other": f"acc_newer_layout_g{old}"}
    with db.write() as cur:
        for name in strays.values():
            cur.execute(f"CREATE TABLE {db.name(name)} (k TEXT)")
    assert all(p.table_prefix() not in ("", "proj_") for p in projections_named(None))
    assert len({p.table_prefix() for p in projections_named(None)}) == 3
    assert all(spec.name.startswith(p.table_prefix())
               for p in projections_named(None) for spec in p.tables)

    rebuild(ledger, ["obligations"], grace=0)
    with db.read() as cur:
        left = set(db.table_names(cur))
    assert strays["newer"] not in left
    assert {strays["later"], strays["other"]} <= left
    assert not any(name.startswith("obl_") and name.endswith(f"_g{old}") for name in left)


def test_a_rebuild_tells_what_it_does_once_the_folding_is_done(ledger):
    """The progress bar is full while keys, indexes and statistics are built (seconds on a
    big ledger): the rebuild says which step it is at, in order, and when the old copies
    are kept for their readers."""
    from cli.projections import REBUILD_PHASES

    import_plan(ledger)
    Runner(ledger).catch_up()
    folded: list[int] = []
    told: list[tuple[str, int]] = []
    rebuild(ledger, ["audit"], grace=0.01, progress=lambda done, _: folded.append(done),
            phase=lambda step: told.append((step, len(folded))))
    assert [step for step, _ in told] == ["indexes", "switch", "grace"]
    # After the folding's reports; the last report (the copy live) comes before the grace.
    assert told[0][1] == told[1][1] == len(folded) - 1 > 0 and told[2][1] == len(folded)
    told.clear()
    rebuild(ledger, ["audit"], grace=0, phase=lambda step: told.append((step, 0)))
    assert [step for step, _ in told] == ["indexes", "switch"]
    assert set(REBUILD_PHASES) == {"indexes", "switch", "grace"}


def test_a_second_rebuild_of_the_same_projection_is_refused(ledger):
    import_plan(ledger)
    from projections.db import Db

    db = Db(ledger)
    Runner(ledger).catch_up()
    claim_generations(db, projections_named(["audit"]), "building")
    with pytest.raises(RebuildInProgress, match="audit is already being rebuilt"):
        rebuild(ledger, ["audit"], grace=0)
    # Other projections are not held up by it.
    result = rebuild(ledger, ["obligations"], grace=0)
    assert result["obligations"]["position"] == ledger.recorder.max_notification_id()


def test_a_dead_rebuild_s_copy_is_dropped_by_the_next_rebuild(ledger, monkeypatch):
    """A ``building`` copy that has shown no sign of life for ``STALE_AFTER`` is a dead
    rebuild's: the next rebuild drops it and goes ahead."""
    from projections import rebuild as rebuilding
    from projections import registry
    from projections.db import Db

    import_plan(ledger)
    Runner(ledger).catch_up()
    db = Db(ledger)
    dead = claim_generations(db, projections_named(["audit"]), "building")["audit"]
    monkeypatch.setattr(rebuilding, "STALE_AFTER", 0.2)
    time.sleep(0.3)
    result = rebuild(ledger, ["audit"], grace=0)
    with db.read() as cur:
        left = {gen.generation: gen.state for gen in registry.all_generations(cur, db, "audit")}
        tables = db.table_names(cur)
    # Its number is free again once it is dropped: the new copy took it.
    assert result["audit"]["generation"] == dead and result["audit"]["old_generation"] == 1
    assert left == {dead: "live"}
    assert {name.rsplit("_", 1)[1] for name in tables if name.startswith("aud_")} == {f"g{dead}"}


def test_a_rebuild_stays_alive_through_the_steps_after_the_folding(ledger, monkeypatch):
    """Keys, indexes and statistics are single statements that take long on a big ledger
    and report nothing: the rebuild keeps saying it is alive meanwhile, so a second rebuild
    started then is refused instead of dropping the copy as a dead one's."""
    from projections import rebuild as rebuilding

    import_plan(ledger)
    Runner(ledger).catch_up()
    monkeypatch.setattr(rebuilding, "STALE_AFTER", 1.5)
    monkeypatch.setattr(rebuilding, "KEEP_ALIVE_EVERY", 0.05)
    refused: list[str] = []

    def meanwhile(step: str) -> None:
        if step == "indexes":  # after this, the folding's last stamp is over STALE_AFTER old
            time.sleep(2.0)
            with pytest.raises(RebuildInProgress, match="audit is already being rebuilt") as exc:
                rebuild(ledger, ["audit"], grace=0)
            refused.append(str(exc.value))

    result = rebuild(ledger, ["audit"], grace=0, phase=meanwhile)
    assert refused and live_generations(ledger)["audit"] == result["audit"]["generation"]


def test_a_rebuilt_copy_has_planner_statistics_before_it_goes_live(ledger):
    """A bulk-loaded table without statistics is planned as if it were tiny (whole-table
    scans for key lookups); the rebuild analyses each table before switching."""
    from projections.db import Db

    import_plan(ledger)
    db = Db(ledger)
    result = rebuild(ledger, ["obligations"], grace=0)
    table = db.name(f"obl_task_g{result['obligations']['generation']}")
    with db.read() as cur:
        if db.dialect == "postgres":
            cur.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", (table,))
            (estimated,) = cur.fetchone()
            assert estimated == 45  # what ANALYZE counted; -1 before any statistics
        else:
            cur.execute("SELECT stat FROM sqlite_stat1 WHERE tbl = %s",
                        (table.strip('"').split(".")[-1],))
            row = cur.fetchone()
            assert row is not None and row[0].split()[0] == "45"


def test_a_rebuilt_copy_is_laid_out_for_an_agencys_obligations(ledger):
    """PostgreSQL: an agency's links are read together, so the rebuild stores them in key
    order (CLUSTER; the build writes them task by task, spread over the table), and the
    occurrences' covering index can skip the table only on pages VACUUM marked all-visible."""
    from projections.db import Db

    db = Db(ledger)
    if db.dialect != "postgres":
        pytest.skip("CLUSTER and the visibility map are PostgreSQL's")
    import_plan(ledger)
    plan = ledger.find_directive("768/QĐ-UBND")
    ledger.request_extension(agency("QNG-STC"), task_id(plan.id, "6.9"),  # an occurrence row
                             requested_due=date(2022, 3, 31), reason="Chờ ý kiến các sở")
    generation = rebuild(ledger, ["obligations"], grace=0)["obligations"]["generation"]
    links = db.name(f"obl_task_agency_g{generation}")
    occurrences = db.name(f"obl_occurrence_g{generation}")
    with db.read() as cur:
        cur.execute(f"SELECT agency, task_id, from_pos FROM {links} ORDER BY ctid")
        stored = cur.fetchall()
        cur.execute(f"SELECT agency, task_id, from_pos FROM {links} "
                    "ORDER BY agency, task_id, from_pos")  # the database's collation
        in_key_order = cur.fetchall()
        cur.execute("SELECT relallvisible FROM pg_class WHERE oid = %s::regclass",
                    (occurrences,))
        (all_visible,) = cur.fetchone()
    assert len(stored) > 45 and stored == in_key_order
    assert all_visible > 0


def index_names(ledger, generation_of: dict[str, int]) -> set[str]:
    from projections.db import Db

    db = Db(ledger)
    with db.read() as cur:
        if db.dialect == "postgres":
            cur.execute("SELECT indexname FROM pg_indexes WHERE schemaname=%s", (db.schema,))
        else:
            cur.execute("SELECT name FROM sqlite_master WHERE type='index'")
        found = {row[0] for row in cur.fetchall()}
    wanted = {name for p in projections_named(None) for spec in p.tables
              for name in spec.index_names(generation_of[p.name])}
    if db.dialect == "postgres":  # SQLite's are declared with the table and have no names
        wanted |= {f"{spec.physical(generation_of[p.name])}_pkey"
                   for p in projections_named(None) for spec in p.tables}
    return wanted - found


def test_a_rebuilt_copy_gets_its_secondary_indexes_once_filled(ledger):
    """Copies built from zero are bulk-loaded without secondary indexes (and on PostgreSQL
    without primary keys); they must have them all by the time they go live (or are handed
    out as scratch copies)."""
    import_plan(ledger)
    from projections.db import Db

    db = Db(ledger)
    Runner(ledger).catch_up()
    assert index_names(ledger, live_generations(ledger)) == set()
    claimed = claim_generations(db, projections_named(["audit"]), "building")["audit"]
    missing = {f"aud_event_g{claimed}_i0"}
    if db.dialect == "postgres":
        missing.add(f"aud_event_g{claimed}_pkey")
    assert index_names(ledger, {"obligations": 1, "accountability": 1, "audit": claimed}
                       ) == missing
    drop_generation(ledger, "audit", claimed)  # the claim given up, so the rebuild can run
    rebuild(ledger, grace=0)
    assert index_names(ledger, live_generations(ledger)) == set()
    with scratch_copies(ledger) as scratch:
        assert index_names(ledger, scratch) == set()


def test_a_rebuild_pauses_the_collector_while_folding_and_restores_it_after(ledger):
    import gc

    import_plan(ledger)
    Runner(ledger).catch_up()
    seen: list[bool] = []
    rebuild(ledger, page_size=10, grace=0,
            progress=lambda done, total: seen.append(gc.isenabled()))
    assert len(seen) > 2 and not any(seen[:-1])  # every page of the build: paused
    assert gc.isenabled()


def test_a_rebuild_leaves_the_collector_off_when_it_was_off(ledger):
    import gc

    import_plan(ledger)
    gc.disable()
    try:
        rebuild(ledger, grace=0)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_registry_rows_are_locked_in_the_order_python_sorts_them(ledger):
    """Every transaction that changes several registry rows takes them in one order: the
    rebuild's switch by ``registry.ROW_ORDER`` in SQL, the worker and the keep-alive by
    ``registry.row_order`` in Python. The two agree whatever the column's collation (the
    postgres image's default orders "Audit" after "accountability"; code points, before)."""
    from projections import registry
    from projections.db import Db

    db = Db(ledger)
    if db.dialect != "postgres":
        pytest.skip("only PostgreSQL locks rows (SQLite: one write lock)")
    with db.read() as cur:
        cur.execute("SELECT 1 FROM pg_collation WHERE collname = 'und-x-icu'")
        if cur.fetchone() is None:
            pytest.skip("this PostgreSQL has no ICU collation to order names otherwise")
    rows = [("obligations", 2), ("Audit", 3), ("accountability", 1), ("audit", 1),
            ("obl_x", 1), ("accountability", 12), ("Ánh", 1)]
    values = ", ".join(["(%s, %s)"] * len(rows))
    with db.read() as cur:
        # A name column under a collation that orders by letters first, case after.
        got = cur.execute(
            f'SELECT name, generation FROM (SELECT name COLLATE "und-x-icu" AS name, '
            f"generation FROM (VALUES {values}) AS v(name, generation)) AS r "
            f"ORDER BY {registry.ROW_ORDER}", [x for row in rows for x in row]).fetchall()
        by_letters = [name for (name,) in cur.execute(
            f'SELECT name COLLATE "und-x-icu" FROM (VALUES {values}) AS v(name, generation) '
            "ORDER BY 1", [x for row in rows for x in row]).fetchall()]
    assert got == sorted(rows, key=lambda row: registry.row_order(*row))
    assert by_letters != sorted(name for name, _ in rows)  # the collation alone would differ
