"""Commands and reads over HTTP against a real `ledger serve` on PostgreSQL.

A fresh schema is filled with a synthetic ledger; agency tokens are created for the lead
agencies; then 64 concurrent clients on loopback (asyncio + httpx, keep-alive) post
progress reports to tasks their agency leads, for a fixed time. Latency is measured per
request on the client, from sending to the full response.

Baseline in the same run: the plain library saving one event per save (one aggregate, one
new event each time) in a single thread: the rate a writer gets from the library alone.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from uuid import uuid4

import httpx

from benchmarks.bench_import import PlainLibrary, plain_env
from benchmarks.common import Row, fresh_schema, percentile
from benchmarks.generator import SyntheticLedger
from domain.application import Ledger
from domain.deadlines import DeadlineKind
from domain.task import Task

LEDGER = str(Path(sys.executable).parent / "ledger")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def populate(url: str, events: int, seed: int) -> list[tuple[str, str]]:
    """Fill the store; return (task id, lead agency) of open tasks with a single due date."""
    ledger = Ledger(url)
    targets: list[tuple[str, str]] = []
    try:
        for batch in SyntheticLedger(seed).batches(events, batch_events=5000):
            ledger.save(*batch.aggregates, after_insert=ledger.after_insert_hooks)
            for aggregate in batch.aggregates:
                if (isinstance(aggregate, Task) and aggregate.cancelled_on is None
                        and aggregate.deadline.kind is not DeadlineKind.RECURRING):
                    targets.append((str(aggregate.id), aggregate.lead))
    finally:
        ledger.close()
    return list(dict(targets).items())


def make_tokens(url: str, agencies: set[str]) -> dict[str, str]:
    from service.storage import ServiceTables
    from service.tokens import TokenStore

    ledger = Ledger(url)
    try:
        tables = ServiceTables(ledger)
        tables.create()
        store = TokenStore(tables)
        return {code: store.create(role="agency", agency=code, label="bench")[0]
                for code in sorted(agencies)}
    finally:
        ledger.close()


@contextmanager
def served(url: str, workers: int):
    port = _free_port()
    env = {**os.environ, "LEDGER_DATABASE_URL": url, "LEDGER_API_LOG_LEVEL": "warning"}
    # The server's logs go to a file: a pipe nobody reads fills up and stalls the server.
    log = tempfile.NamedTemporaryFile(prefix="ledger-serve-", suffix=".log", delete=False)
    proc = subprocess.Popen(
        [LEDGER, "serve", "--port", str(port), "--workers", str(workers),
         "--log-level", "warning"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise RuntimeError("ledger serve did not become healthy")
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
        os.unlink(log.name)


async def _load(base: str, make_request, clients: int, seconds: float):
    """``clients`` keep-alive connections, each sending its next request as soon as the
    previous answer is in. aiohttp, because httpx's client spent more CPU than the server
    (it capped a 64-client run at a third of what the server could take)."""
    import aiohttp

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    stop = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(base, connector=connector, timeout=timeout) as client:
        async def worker(n: int) -> None:
            rng = random.Random(n)
            while time.perf_counter() < stop:
                method, path, headers, body = make_request(rng)
                started = time.perf_counter()
                async with client.request(method, path, headers=headers, json=body) as response:
                    await response.read()
                latencies.append(time.perf_counter() - started)
                statuses[response.status] = statuses.get(response.status, 0) + 1

        begun = time.perf_counter()
        await asyncio.gather(*(worker(n) for n in range(clients)))
        elapsed = time.perf_counter() - begun
    return latencies, statuses, elapsed


def library_single_event_rate(url: str, seconds: float) -> float:
    """The plain library, one save per new event, on one aggregate, single-threaded."""
    from eventsourcing.domain import Aggregate

    class Counter(Aggregate):
        def __init__(self) -> None:
            self.n = 0

        def bump(self) -> None:
            self.trigger_event(self.Bumped)

        class Bumped(Aggregate.Event):
            def apply(self, counter) -> None:
                counter.n += 1

    app = PlainLibrary(env=plain_env(url))
    try:
        counter = Counter()
        app.save(counter)
        saves, stop = 0, time.perf_counter() + seconds
        begun = time.perf_counter()
        while time.perf_counter() < stop:
            counter.bump()
            app.save(counter)
            saves += 1
        return saves / (time.perf_counter() - begun)
    finally:
        app.close()


def run_writes(events: int, seconds: float, clients: int = 64, workers: int = 2,
               seed: int = 7) -> list[Row]:
    with fresh_schema("http") as url:
        targets = populate(url, events, seed)
        tokens = make_tokens(url, {lead for _, lead in targets})
        baseline = library_single_event_rate(url, min(seconds, 10))

        def progress(rng: random.Random):
            task, lead = rng.choice(targets)
            headers = {"Authorization": f"Bearer {tokens[lead]}",
                       "Idempotency-Key": uuid4().hex}
            return "POST", f"/v1/tasks/{task}/progress-reports", headers, {
                "summary": "Đã triển khai theo kế hoạch", "percent": rng.randint(1, 99)}

        with served(url, workers) as base:
            latencies, statuses, elapsed = asyncio.run(_load(base, progress, clients, seconds))
    ok = sum(n for status, n in statuses.items() if 200 <= status < 300)
    conflicts = sum(n for status, n in statuses.items() if status in (409, 412))
    per_second = ok / elapsed
    p50, p99 = percentile(latencies, 50) * 1000, percentile(latencies, 99) * 1000
    other = {s: n for s, n in statuses.items() if not (200 <= s < 300 or s in (409, 412))}
    note = f"{ok:,} ok, {conflicts} conflicts" + (f", other {other}" if other else "")
    return [Row(
        f"2. HTTP writes, {clients} clients, {workers} workers",
        f"{per_second:,.0f} cmd/s · p50 {p50:.1f} ms · p99 {p99:.1f} ms",
        f"{baseline:,.0f} events/s plain lib, one event per save", per_second / baseline,
        "≥ 1,000 cmd/s, p99 ≤ 50 ms", per_second >= 1000 and p99 <= 50, note)]
