"""Commands and reads over HTTP against a real `ledger serve` on PostgreSQL.

A fresh schema is filled with a synthetic ledger; agency tokens are created for the lead
agencies; then 64 concurrent clients on loopback (asyncio + aiohttp, keep-alive) post
progress reports to tasks their agency leads, for a fixed time. Latency is measured per
request on the client, from sending to the full response.

Baseline in the same run: the plain library saving one event per save (one aggregate, one
new event each time) in a single thread: the rate a writer gets from the library alone.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from uuid import uuid4

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
    # A task comes back in later batches with its newer events, maybe cancelled by then:
    # judged on its last state (a cancelled target answered 409 task-not-open, which the
    # writes benchmark had counted as write conflicts).
    targets: dict[str, str | None] = {}
    try:
        for batch in SyntheticLedger(seed).batches(events, batch_events=5000):
            ledger.save(*batch.aggregates, after_insert=ledger.after_insert_hooks)
            for aggregate in batch.aggregates:
                if isinstance(aggregate, Task):
                    open_once = (aggregate.cancelled_on is None
                                 and aggregate.deadline.kind is not DeadlineKind.RECURRING)
                    targets[str(aggregate.id)] = aggregate.lead if open_once else None
    finally:
        ledger.close()
    return [(task, lead) for task, lead in targets.items() if lead is not None]


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
def served(url: str, workers: int, *, with_worker: bool = False):
    port = _free_port()
    env = {**os.environ, "LEDGER_DATABASE_URL": url, "LEDGER_API_LOG_LEVEL": "warning"}
    # The server's logs go to a file: a pipe nobody reads fills up and stalls the server.
    log = tempfile.NamedTemporaryFile(prefix="ledger-serve-", suffix=".log", delete=False)
    proc = subprocess.Popen(
        [LEDGER, "serve", "--port", str(port), "--workers", str(workers),
         "--log-level", "warning", *(["--with-worker"] if with_worker else [])],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=1) as answer:
                    if answer.status == 200:
                        break
            except OSError:  # refused while starting, or an HTTP error status
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


async def _load(base: str, make_request, clients: int, seconds: float, *,
                think: float = 0.0, on_answer=None, timeout: float = 30.0):
    """``clients`` keep-alive connections, each sending its next request as soon as the
    previous answer is in. aiohttp, because httpx's client spent more CPU than the server
    (it capped a 64-client run at a third of what the server could take).

    ``think``: seconds each client waits after an answer (and, spread over the clients,
    before its first request): clients that poll rather than load. ``on_answer(status,
    body)`` is called with each answer as it arrives."""
    import aiohttp

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    stop = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=clients)
    limit = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(base, connector=connector, timeout=limit) as client:
        async def worker(n: int) -> None:
            rng = random.Random(n)
            if think:
                await asyncio.sleep(think * n / clients)
            while time.perf_counter() < stop:
                method, path, headers, body = make_request(rng)
                started = time.perf_counter()
                async with client.request(method, path, headers=headers, json=body) as response:
                    answer = await response.read()
                latencies.append(time.perf_counter() - started)
                statuses[response.status] = statuses.get(response.status, 0) + 1
                if on_answer is not None:
                    on_answer(response.status, answer)
                if think:
                    await asyncio.sleep(think)

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
            by_wrk = _wrk_writes(base, targets, tokens, clients, seconds)
    ok = sum(n for status, n in statuses.items() if 200 <= status < 300)
    conflicts = sum(n for status, n in statuses.items() if status in (409, 412))
    per_second = ok / elapsed
    p50, p99 = percentile(latencies, 50) * 1000, percentile(latencies, 99) * 1000
    other = {s: n for s, n in statuses.items() if not (200 <= s < 300 or s in (409, 412))}
    note = f"{ok:,} ok, {conflicts} conflicts" + (f", other {other}" if other else "")
    rows = [Row(
        f"2. HTTP writes, {clients} clients, {workers} workers",
        f"{per_second:,.0f} cmd/s · p50 {p50:.1f} ms · p99 {p99:.1f} ms",
        f"{baseline:,.0f} events/s plain lib, one event per save", per_second / baseline,
        "≥ 1,000 cmd/s, p99 ≤ 50 ms", per_second >= 1000 and p99 <= 50, note)]
    if by_wrk is not None:
        rate, p50, p99, failed = by_wrk
        rows.append(Row(
            f"(same writes from wrk: {clients} connections)",
            f"{rate:,.0f} cmd/s · p50 {p50:.1f} ms · p99 {p99:.1f} ms",
            f"{baseline:,.0f} events/s plain lib, one event per save", rate / baseline,
            "≥ 1,000 cmd/s, p99 ≤ 50 ms", rate >= 1000 and p99 <= 50 and not failed,
            f"{failed} requests without a 2xx answer" if failed else ""))
    return rows


def _wrk_writes(base: str, targets: list[tuple[str, str]], tokens: dict[str, str],
                clients: int, seconds: float) -> tuple[float, float, float, int] | None:
    """Row 2's progress reports posted by wrk (when installed), which leaves more of the two
    shared cores to the server than aiohttp: each to a random task, with its lead agency's
    token and an Idempotency-Key no request has used."""
    lines = ",\n".join(f'{{"/v1/tasks/{task}/progress-reports", "Bearer {tokens[lead]}"}}'
                       for task, lead in targets)
    lua = (f"local targets = {{\n{lines}\n}}\n"
           f'local prefix = "{uuid4().hex}-"\n'
           "local sent = 0\n"
           "math.randomseed(7)\n"
           "request = function()\n"
           "  sent = sent + 1\n"
           "  local target = targets[math.random(#targets)]\n"
           "  local body = string.format("
           "'{\"summary\":\"Đã triển khai theo kế hoạch\",\"percent\":%d}', "
           "math.random(1, 99))\n"
           '  return wrk.format("POST", target[1], {["Authorization"] = target[2], '
           '["Idempotency-Key"] = prefix .. sent, ["Content-Type"] = "application/json"}, '
           "body)\n"
           "end\n")
    return _run_wrk(base, lua, clients, seconds)


def _catch_up(url: str) -> None:
    from projections.runner import Runner

    ledger = Ledger(url)
    try:
        Runner(ledger, page_size=5000).catch_up()
    finally:
        ledger.close()


def _warm_up(base: str, make_request, clients: int, *, window: float = 2.0,
             longest: float = 60.0) -> float:
    """Load the server until its rate stops rising (two windows in a row within 10%); the
    seconds it took. Every process computes each agency's answer once before it can send
    it from its cache; at 200k events that took 5–8 s, and a fixed 2 s warm-up had left
    those computations inside the measured window, at its tail."""
    begun = time.perf_counter()
    rates: list[float] = []
    while time.perf_counter() - begun < longest:
        _, statuses, elapsed = asyncio.run(_load(base, make_request, clients, window))
        rates.append(statuses.get(200, 0) / elapsed)
        if len(rates) >= 3 and rates[-1] <= 1.1 * rates[-2] and rates[-2] <= 1.1 * rates[-3]:
            break
    return time.perf_counter() - begun


def _wrk(base: str, paths: list[str], headers: dict[str, str], clients: int,
         seconds: float) -> tuple[float, float, float, int] | None:
    """``_run_wrk``'s figures for GETs of ``paths`` at random from wrk, a load generator in
    C, when it is installed (Debian: apt install wrk); None otherwise. aiohttp's client
    takes 0.6–0.7 of one of the two cores the server shares with it; wrk takes much less."""
    quoted = ", ".join(f'"{path}"' for path in paths)
    script = (f"local paths = {{{quoted}}}\n"
              + "".join(f'wrk.headers["{name}"] = "{value}"\n' for name, value in headers.items())
              + "math.randomseed(7)\n"
              "request = function() return wrk.format(nil, paths[math.random(#paths)]) end\n")
    return _run_wrk(base, script, clients, seconds)


def _run_wrk(base: str, lua: str, clients: int, seconds: float
             ) -> tuple[float, float, float, int] | None:
    """wrk running the request script ``lua``: (2xx answers/s, p50 ms, p99 ms, requests
    without a 2xx answer: other answers, socket errors and timeouts), or None when wrk is
    not installed."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False,
                                     encoding="utf-8") as script:
        script.write(lua)
    try:
        out = subprocess.run(
            [wrk, "-t1", f"-c{clients}", f"-d{seconds:.0f}s", "--latency", "-s", script.name,
             base], capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(script.name)
    found: dict[str, str] = {}
    for line in out.splitlines():
        words = line.split()
        if words and words[0] in ("50%", "99%", "Requests/sec:", "Non-2xx"):
            found[words[0]] = words[-1] if words[0] == "Non-2xx" else words[1]
        elif words[1:3] == ["requests", "in"]:
            found["requests"] = words[0]
        elif words[:2] == ["Socket", "errors:"]:  # connect N, read N, write N, timeout N
            found["errors"] = str(sum(int(w.rstrip(",")) for w in words[3::2]))
    answers, refused = int(found["requests"]), int(found.get("Non-2xx", 0))
    rate = float(found["Requests/sec:"]) * (answers - refused) / max(answers, 1)
    return (rate, _wrk_ms(found["50%"]), _wrk_ms(found["99%"]),
            refused + int(found.get("errors", 0)))


def _wrk_row(label: str, measured: tuple[float, float, float, int], floor: float) -> Row:
    rate, p50, p99, failed = measured
    return Row(label, f"{rate:,.0f} req/s · p50 {p50:.1f} ms · p99 {p99:.1f} ms",
               f"{floor:,.0f} req/s GET /healthz from wrk", rate / floor,
               "≥ 2,000 req/s, p99 ≤ 20 ms", rate >= 2000 and p99 <= 20 and not failed,
               f"{failed} requests without a 2xx answer" if failed else "")


def _wrk_ms(text: str) -> float:
    """wrk's latency (``812.00us``, ``21.43ms``, ``1.20s``) in milliseconds."""
    for unit, factor in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if text.endswith(unit):
            return float(text[:-len(unit)]) * factor
    raise ValueError(f"wrk latency {text!r}")


def run_reads(events: int, seconds: float, clients: int = 64, workers: int = 2,
              seed: int = 7) -> list[Row]:
    """Obligations of random agencies over HTTP, on a caught-up read model whose answers
    every server process has cached (the warm-up). Baseline in the same run: GET /healthz,
    a route through FastAPI with no store access (cached default pages are sent before
    FastAPI routes the request, service/cached_reads.py, so they can beat it). With wrk
    installed, the same reads once more from wrk, which leaves more of the shared cores to
    the server, as JSON and gzipped (the aiohttp client asks for JSON as it is: inflating
    on the shared cores would measure the client)."""
    with fresh_schema("reads") as url:
        targets = populate(url, events, seed)
        agencies = sorted({lead for _, lead in targets})
        tokens = make_tokens(url, {agencies[0]})
        _catch_up(url)
        auth = {"Authorization": f"Bearer {tokens[agencies[0]]}"}
        # JSON as it is: this client would inflate gzipped answers on the cores it shares
        # with the server (aiohttp asks for gzip unless told otherwise).
        plain = {**auth, "Accept-Encoding": "identity"}

        def obligations(rng: random.Random):
            return "GET", f"/v1/agencies/{rng.choice(agencies)}/obligations", plain, None

        def healthz(rng: random.Random):
            return "GET", "/healthz", {}, None

        with served(url, workers) as base:
            warm = _warm_up(base, obligations, clients)
            _, floor_statuses, floor_elapsed = asyncio.run(
                _load(base, healthz, clients, min(seconds, 10)))
            latencies, statuses, elapsed = asyncio.run(
                _load(base, obligations, clients, seconds))
            paths = [f"/v1/agencies/{code}/obligations" for code in agencies]
            wrk_floor = _wrk(base, ["/healthz"], {}, clients, min(seconds, 10))
            by_wrk = _wrk(base, paths, auth, clients, seconds)
            # wrk never inflates: what the server gains by sending ~50 KB instead of ~470.
            gzipped = _wrk(base, paths, {**auth, "Accept-Encoding": "gzip"}, clients, seconds)
            # The same answers asked with a query string: routed through FastAPI (only the
            # default page is sent before routing), so the general path stays measured.
            routed = _wrk(base, [f"{path}?limit=500" for path in paths],
                          {**auth, "Accept-Encoding": "gzip"}, clients, seconds)
    ok = statuses.get(200, 0)
    per_second = ok / elapsed
    floor_rate = floor_statuses.get(200, 0) / floor_elapsed
    p50, p99 = percentile(latencies, 50) * 1000, percentile(latencies, 99) * 1000
    others = {s: n for s, n in statuses.items() if s != 200}
    rows = [Row(
        f"3. HTTP obligation reads, {clients} clients, {workers} workers",
        f"{per_second:,.0f} req/s · p50 {p50:.1f} ms · p99 {p99:.1f} ms",
        f"{floor_rate:,.0f} req/s GET /healthz (a FastAPI route)", per_second / floor_rate,
        "≥ 2,000 req/s, p99 ≤ 20 ms", per_second >= 2000 and p99 <= 20,
        f"{ok:,} answers over {len(agencies)} agencies, after {warm:.0f} s of warm-up"
        + (f", other {others}" if others else "")
        + ("" if wrk_floor is not None else "; wrk is not installed (Debian: apt install wrk), "
           "so no line shows what the server does with a client that takes less CPU"))]
    if wrk_floor is not None:
        for label, measured in ((f"(same reads from wrk: {clients} connections)", by_wrk),
                                ("(same, gzipped: Accept-Encoding: gzip)", gzipped),
                                ("(same, gzipped, ?limit=500: routed through FastAPI)",
                                 routed)):
            if measured is not None:
                rows.append(_wrk_row(label, measured, wrk_floor[0]))
    return rows


def run_lag(events: int, seconds: float, writers: int = 16, workers: int = 2,
            seed: int = 7, windows: int = 1, embedded: bool = False) -> list[Row]:
    """Commit→visible: while ``writers`` clients keep writing, a probe writes and polls
    until the read models (folded by a separate `ledger worker`) have reached its
    position. Baseline: the same probe polling the journal itself (when another connection
    sees the committed event).

    ``embedded``: no separate worker; the server folds on a thread of each of its processes
    (``ledger serve --with-worker``, what the README's first steps run).

    ``windows``: measure that many windows of ``seconds`` one after the other, with the
    same server and worker, and show each window's p99 beside the whole run's: the tail
    comes from rare pauses, and one window says little about how often they come."""
    import psycopg

    from domain.persistence.url import parse_store_url

    with fresh_schema("lag") as url:
        targets = populate(url, events, seed)
        tokens = make_tokens(url, {lead for _, lead in targets})
        _catch_up(url)
        env = parse_store_url(url).env
        schema = env["POSTGRES_SCHEMA"]
        conn = psycopg.connect(dbname=env["POSTGRES_DBNAME"], host=env["POSTGRES_HOST"],
                               port=env["POSTGRES_PORT"], user=env["POSTGRES_USER"],
                               autocommit=True)
        worker_log = tempfile.NamedTemporaryFile(prefix="ledger-worker-", delete=False)
        worker = None if embedded else subprocess.Popen(
            [LEDGER, "worker", "--poll", "1", "--checkpoint-every", "0"],
            env={**os.environ, "LEDGER_DATABASE_URL": url}, stdout=worker_log,
            stderr=subprocess.STDOUT, start_new_session=True)
        lags: list[list[float]] = []  # per window
        journal_lags: list[float] = []
        try:
            with served(url, workers, with_worker=embedded) as base:
                def progress(rng: random.Random):
                    task, lead = rng.choice(targets)
                    return "POST", f"/v1/tasks/{task}/progress-reports", {
                        "Authorization": f"Bearer {tokens[lead]}"}, {"summary": "tải nền"}

                async def probe(window: int) -> None:
                    import aiohttp

                    rng = random.Random(seed + window)
                    stop = time.perf_counter() + seconds
                    async with aiohttp.ClientSession(base) as client:
                        while time.perf_counter() < stop:
                            task, lead = rng.choice(targets)
                            async with client.post(
                                    f"/v1/tasks/{task}/progress-reports",
                                    json={"summary": "đo độ trễ"},
                                    headers={"Authorization": f"Bearer {tokens[lead]}"}) as r:
                                body = await r.json()
                            if r.status != 200:
                                continue
                            position, written = body["position"], time.perf_counter()
                            seen_journal = None
                            while True:
                                if seen_journal is None and conn.execute(
                                        f'SELECT max(notification_id) FROM "{schema}".'
                                        "ledger_events").fetchone()[0] >= position:
                                    seen_journal = time.perf_counter() - written
                                row = conn.execute(
                                    f'SELECT min(position) FROM "{schema}".proj_state '
                                    "WHERE state = 'live'").fetchone()
                                if row[0] is not None and row[0] >= position:
                                    lags[-1].append(time.perf_counter() - written)
                                    journal_lags.append(seen_journal or 0.0)
                                    break
                                await asyncio.sleep(0.002)
                            await asyncio.sleep(0.05)

                async def both(window: int) -> None:
                    await asyncio.gather(_load(base, progress, writers, seconds),
                                         probe(window))

                for window in range(windows):
                    lags.append([])
                    asyncio.run(both(window))
        finally:
            if worker is not None:
                os.killpg(worker.pid, signal.SIGTERM)
                worker.wait(timeout=30)
            worker_log.close()
            os.unlink(worker_log.name)
            conn.close()
    every = [lag for window in lags for lag in window]
    p50, p99 = percentile(every, 50) * 1000, percentile(every, 99) * 1000
    j99 = percentile(journal_lags, 99) * 1000
    spread = ""
    if windows > 1:
        per_window = [percentile(window, 99) * 1000 for window in lags if window]
        met = sum(1 for p in per_window if p <= 200)
        spread = (f"; p99 per window of {seconds:.0f} s: "
                  f"{', '.join(f'{p:.0f}' for p in per_window)} ms, "
                  f"≤ 200 ms in {met} of {len(per_window)}")
    folder = ("a thread of each server process (`ledger serve --with-worker`)" if embedded
              else "separate `ledger worker` process")
    return [Row(
        f"7. projection lag commit→visible, {writers} writers",
        f"p50 {p50:.0f} ms · p99 {p99:.0f} ms ({len(every)} probes{spread})",
        f"journal visible p99 {j99:.1f} ms", None, "p99 ≤ 200 ms", p99 <= 200,
        f"worker: {folder} (LISTEN/NOTIFY + poll)")]
