"""Short runs of the scripted drills (drills/): the full runs and their long modes are
run by hand (docs/reliability.md); these keep them working and prove the property on a
few rounds."""

from __future__ import annotations

import pytest

from drills.common import postgres_bin
from tests.conftest import require_postgres, wait_until


@pytest.fixture
def drill_cluster():
    """A disposable PostgreSQL cluster (drills/common.py) with a prepared ledger: (the
    cluster, the ledger's URL, what ``prepare_ledger`` gave). Tests may stop and start it."""
    if postgres_bin("initdb") is None or postgres_bin("pg_ctl") is None:
        pytest.skip("initdb/pg_ctl are not installed: no disposable PostgreSQL cluster")
    import psycopg

    from drills.common import Cluster, prepare_ledger

    cluster = Cluster().create()
    try:
        with psycopg.connect(cluster.url(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE ledger")
        url = cluster.url("ledger", schema="quang_ngai")
        yield cluster, url, prepare_ledger(url)
    finally:
        cluster.destroy()


@pytest.mark.postgres
@pytest.mark.slow
def test_crash_drill_loses_no_acknowledged_write(pg_schema_url):
    from drills.crash import CrashDrill

    result = CrashDrill(pg_schema_url, rounds=4, writers=6, min_up=0.3, max_up=1.5,
                        seed=3).run()
    figures = result["figures"]
    assert result["failures"] == []
    assert sum(figures["kills"].values()) == 4 and set(figures["kills"]) == {"serve", "worker"}
    assert figures["kills"]["serve"] >= 1 and figures["kills"]["worker"] >= 1  # seed 3
    assert figures["projection tables equal to a rebuild"] == "all"
    assert figures["writes acknowledged"] > 0
    assert figures["writes still in doubt"] == 0


@pytest.mark.postgres
@pytest.mark.slow
def test_db_outage_drill_fails_cleanly_and_recovers_without_restart():
    if postgres_bin("initdb") is None or postgres_bin("pg_ctl") is None:
        pytest.skip("initdb/pg_ctl are not installed: no disposable PostgreSQL cluster")
    require_postgres()
    from drills.db_outage import run_drill

    # Down long enough to outlast the pool timeout (5 s) that requests in flight when the
    # database dies may still wait: after it, every answer must be a fast 503.
    result = run_drill(before=2, down=8, after=3, writers=4, workers=2)
    figures = result["figures"]
    assert result["failures"] == []
    answers = figures["answers while down, by status"]
    assert set(answers) == {503} and answers[503] > 0
    assert figures["/readyz while down"] == ["503"]
    assert figures["/healthz while down"] == ["200"]
    assert figures["writes still in doubt"] == 0
    assert "never" not in figures["database start -> first acknowledged write (s)"]


@pytest.mark.postgres
@pytest.mark.slow
def test_a_worker_started_while_its_database_is_down_waits_for_it_then_catches_up(
        drill_cluster):
    """Started before its database (a host rebooting, or the database restarting just then),
    `ledger worker` waits for it, as it waits out outages once running, instead of exiting
    with a traceback: the outage drill's worker, started 2 s before the outage, once died so
    on a busy machine."""
    from drills.common import Worker
    from drills.db_outage import _worker_recovered

    cluster, url, _ = drill_cluster  # (events in the journal that no projection has folded)
    cluster.stop()
    worker = Worker(url)
    worker.start()
    try:
        assert wait_until(lambda: "cannot be reached" in worker.output() or not worker.running)
        assert worker.running, worker.output()
        assert "Traceback" not in worker.output()

        cluster.start()
        assert wait_until(lambda: "folded" in worker.output() or not worker.running)
        recovered = _worker_recovered(url, worker)
        assert recovered["alive"], worker.output()
        assert recovered["caught_up"] is not None, worker.output()
        assert recovered["differ"] == []
    finally:
        worker.stop()


@pytest.mark.postgres
@pytest.mark.slow
def test_reads_while_the_database_is_down_are_503_problems_or_overviews_still_in_their_window(
        drill_cluster):
    """The outage drill writes; this reads. With PostgreSQL stopped, every read is a 503
    problem+json with Retry-After (the breaker), except an overview still within its window,
    which is sent from the process's cache as the answer it was (its `as_of` says from
    when); once the database is back, every read answers again, without a restart."""
    import httpx

    from drills.common import DRILL_AGENCY, Server

    cluster, url, prepared = drill_cluster
    server = Server(url, workers=1, env={"LEDGER_API_EMBEDDED_WORKER": "true",
                                         "LEDGER_API_OVERVIEW_SECONDS": "600"})
    server.start()
    try:
        server.wait_ready(path="/readyz")
        overviews = ["/v1/obligation-counts", "/v1/accountability?period=2026"]
        others = [f"/v1/agencies/{DRILL_AGENCY}/obligations",
                  f"/v1/agencies/{DRILL_AGENCY}/obligations?limit=5",
                  f"/v1/history/agency/{DRILL_AGENCY}", "/v1/events?limit=1", "/v1/agencies",
                  "/v1/obligation-counts?min_position=10000000"]
        office = {"Authorization": f"Bearer {prepared.tokens['office']}"}
        with httpx.Client(base_url=server.base, headers=office, timeout=30) as client:
            before = {}
            for path in overviews:
                answer = client.get(path)
                assert answer.status_code == 200, answer.text
                before[path] = answer.json()["data"]
            cluster.stop()
            for path in overviews:
                answer = client.get(path)
                assert answer.status_code == 200 and answer.json()["data"] == before[path]
            for path in others:
                answer = client.get(path)
                assert answer.status_code == 503, (path, answer.text)
                assert answer.headers["content-type"] == "application/problem+json"
                assert answer.json()["type"].endswith(":store-unavailable")
                assert int(answer.headers["retry-after"]) > 0
            cluster.start()
            assert wait_until(lambda: client.get("/readyz").status_code == 200)
            for path in overviews + others[:-1]:
                assert client.get(path).status_code == 200, path
        assert "Traceback" not in server.output()
    finally:
        server.stop()
