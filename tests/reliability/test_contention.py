"""Contention: 64 concurrent writers on one task. Exactly one wins per version, the others
get 409 (concurrent-write) or 412 (stale-version); no acknowledged write is lost; retries
with one Idempotency-Key store the command once.

In-process (TestClient, threads released together by a barrier) on both stores, and over
real HTTP against `ledger serve` with two worker processes on PostgreSQL. Every assertion
is about outcomes (counts, versions, the journal), none about timing.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import UUID

import httpx
import pytest

from tests.api.conftest import assert_problem

WRITERS = 64
MAX_ATTEMPTS = 500  # a writer that lost a race retries; it must win long before this


def together(n: int, send: Callable[[int], Any]) -> list[Any]:
    """Run ``send(i)`` for i in 0..n-1 on n threads released at the same moment."""
    barrier = threading.Barrier(n)

    def run(i: int) -> Any:
        barrier.wait()
        return send(i)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(run, range(n)))


def journal_entry(get: Callable[..., Any], position: int) -> dict:
    page = get(f"/v1/events?after={position - 1}&limit=1").json()["events"]
    assert page and page[0]["position"] == position, position
    return page[0]


def events_after(get: Callable[..., Any], position: int) -> list[dict]:
    return get(f"/v1/events?after={position}&limit=1000").json()["events"]


def check_one_winner_per_version(post, get, task_path: str, rounds: int = 3) -> None:
    """``post(path, body, headers)`` and ``get(path)`` send as the lead agency."""
    for round_no in range(rounds):
        shown = get(task_path)
        version = int(shown.headers["ETag"].strip('"'))
        head = get("/v1/events?limit=1").json()["head"]
        summaries = [f"vòng {round_no}, người ghi {i}" for i in range(WRITERS)]
        responses = together(WRITERS, lambda i, summaries=summaries, version=version: post(
            f"{task_path}/progress-reports", {"summary": summaries[i]},
            {"If-Match": f'"{version}"'}))
        statuses = Counter(r.status_code for r in responses)
        winners = [i for i, r in enumerate(responses) if r.status_code == 200]
        assert len(winners) == 1, statuses
        assert set(statuses) <= {200, 409, 412}, statuses
        for response in responses:
            if response.status_code != 200:
                code = response.json()["code"]
                assert code in ("concurrent-write", "stale-version"), response.text
                assert_problem(response, response.status_code, code)
        won = responses[winners[0]].json()
        assert won["version"] == version + 1
        assert responses[winners[0]].headers["ETag"] == f'"{version + 1}"'
        # Exactly one new event, the winner's. (Positions may skip values on PostgreSQL:
        # each refused insert consumed one from the sequence.)
        new = events_after(get, head)
        assert [e["position"] for e in new] == [won["position"]]
        assert new[0]["data"]["summary"] == summaries[winners[0]]
        assert new[0]["version"] == version + 1


def check_no_lost_update(post, get, task_path: str) -> None:
    """64 writers without If-Match, each retrying its 409s: all 64 are acknowledged, at
    64 consecutive versions, and all 64 are in the journal and in the task."""
    version = int(get(task_path).headers["ETag"].strip('"'))
    summaries = [f"báo cáo song song {i}" for i in range(WRITERS)]

    def send(i: int):
        for _ in range(MAX_ATTEMPTS):
            response = post(f"{task_path}/progress-reports", {"summary": summaries[i]}, {})
            if response.status_code != 409:
                return response
            assert response.json()["code"] == "concurrent-write", response.text
            time.sleep(random.uniform(0, 0.02))  # a client backs off before retrying
        raise AssertionError(f"writer {i} never got through")

    responses = together(WRITERS, send)
    assert [r.status_code for r in responses] == [200] * WRITERS
    results = [r.json() for r in responses]
    assert sorted(r["version"] for r in results) == list(range(version + 1,
                                                               version + 1 + WRITERS))
    assert len({r["position"] for r in results}) == WRITERS
    for summary, result in zip(summaries, results, strict=True):
        entry = journal_entry(get, result["position"])
        assert (entry["data"]["summary"], entry["version"]) == (summary, result["version"])
    progress = get(task_path).json()["progress"]
    assert Counter(p["summary"] for p in progress[-WRITERS:]) == Counter(summaries)


def check_idempotent_retries(post, get, task_path: str, count_keys: Callable[[], int]
                             ) -> None:
    """16 commands, each sent 4 times at once with its key, every copy retrying its 409s:
    each command is stored once and every copy gets the same answer."""
    keys, copies = 16, WRITERS // 16
    head = get("/v1/events?limit=1").json()["head"]
    rows = count_keys()

    def send(i: int):
        n = i % keys
        body = {"summary": f"lệnh {n} gửi lại", "percent": n}
        for _ in range(MAX_ATTEMPTS):
            response = post(f"{task_path}/progress-reports", body,
                            {"Idempotency-Key": f"contention-{n:02d}"})
            if response.status_code != 409:
                return n, response
            time.sleep(random.uniform(0, 0.02))
        raise AssertionError(f"command {n} never got through")

    answers: dict[int, set[str]] = {}
    for n, response in together(keys * copies, send):
        assert response.status_code == 200, response.text
        answers.setdefault(n, set()).add(response.text)
    assert all(len(texts) == 1 for texts in answers.values()), answers
    assert len(answers) == keys
    assert len(events_after(get, head)) == keys
    assert count_keys() == rows + keys
    progress = get(task_path).json()["progress"]
    stored = Counter(p["summary"] for p in progress)
    assert all(stored[f"lệnh {n} gửi lại"] == 1 for n in range(keys)), stored


# -- in-process, both stores -----------------------------------------------------------------


def _in_process(api):
    def post(path, body, headers):
        return api.post("lead", path, body, **headers)

    def get(path):
        return api.get("lead", path)

    return post, get, f"/v1/tasks/{api.task('6.9')}"


def test_64_writers_one_winner_per_version(api):
    post, get, task = _in_process(api)
    check_one_winner_per_version(post, get, task)
    assert len(api.ledger.task(UUID(api.task("6.9"))).progress) == 3


def test_64_writers_lose_no_update(api):
    post, get, task = _in_process(api)
    check_no_lost_update(post, get, task)
    from domain.application import read_journal

    task_id = UUID(api.task("6.9"))
    versions = [e.version for e in read_journal(api.ledger, 0, 10_000)
                if e.entity_id == task_id]
    assert versions == list(range(1, 2 + WRITERS))  # contiguous: nothing lost, no gap


def test_idempotent_retries_under_contention_store_each_command_once(api):
    post, get, task = _in_process(api)
    check_idempotent_retries(post, get, task, api.idempotency_rows)


# -- a real server on PostgreSQL -------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.slow
def test_64_http_clients_against_ledger_serve_on_postgresql(pg_schema_url):
    from drills.common import Server, prepare_ledger

    prepared = prepare_ledger(pg_schema_url)
    server = Server(pg_schema_url, workers=2)
    server.start()
    local = threading.local()

    def client() -> httpx.Client:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=server.base, timeout=60, headers={
                "Authorization": f"Bearer {prepared.tokens['agency']}"})
        return local.client

    def post(path, body, headers):
        return client().post(path, json=body, headers=headers)

    def get(path):
        return client().get(path)

    try:
        server.wait_ready(path="/readyz")
        task = f"/v1/tasks/{prepared.tasks[0]}"
        check_one_winner_per_version(post, get, task)
        check_no_lost_update(post, get, f"/v1/tasks/{prepared.tasks[1]}")

        import psycopg

        from tests.conftest import PG_URL

        schema = pg_schema_url.rsplit("schema=", 1)[1]

        def count_keys() -> int:
            with psycopg.connect(PG_URL) as conn:
                return conn.execute(
                    f'SELECT COUNT(*) FROM "{schema}".ledger_idempotency').fetchone()[0]

        check_idempotent_retries(post, get, f"/v1/tasks/{prepared.tasks[2]}", count_keys)
    finally:
        server.stop()
    assert "Traceback" not in server.output(), server.output()[-3000:]
