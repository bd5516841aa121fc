"""Read-model benchmarks on the bulk-imported store (benchmarks 4 and 5).

4. Rebuild of all projections from zero (events/s, peak RSS) vs raw select+decode of the
   same events: `ledger rebuild --all` runs as a child process, so its peak RSS is its own.
5. Point-in-time obligations query (p50/p95) vs replaying the journal up to T.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.as_of_ab import as_of_questions
from benchmarks.bench_store import raw_select_decode
from benchmarks.common import Row, library_mapper, percentile, rate
from domain.application import Ledger
from projections.db import Db
from projections.queries import ReadModels
from projections.rebuild import default_jobs
from service.collector import rarer_full_collections

LEDGER = str(Path(sys.executable).parent / "ledger")


def rebuild_all(url: str) -> list[Row]:
    ledger = Ledger(url)
    try:
        n_raw, s_raw = raw_select_decode(ledger)
        jobs = default_jobs(Db(ledger))
    finally:
        ledger.close()
    env = {**os.environ, "LEDGER_DATABASE_URL": url, "COLUMNS": "120"}
    started = time.perf_counter()
    proc = subprocess.Popen([LEDGER, "rebuild", "--all", "--json", "--grace", "0"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    peaks: dict[int, int] = {}
    watcher = threading.Thread(target=_watch_peaks, args=(proc, peaks), daemon=True)
    watcher.start()
    out = proc.stdout.read() if proc.stdout else b""
    status = proc.wait()
    seconds = time.perf_counter() - started
    watcher.join()
    if status != 0:
        raise RuntimeError(f"ledger rebuild failed (status {status})")
    json.loads(out)  # it answered what it built
    largest, total = max(peaks.values(), default=0) / 1024, sum(peaks.values()) / 1024
    if not peaks:
        memory = "peak RSS not measured (no /proc here)"
    elif len(peaks) == 1:
        memory = f"peak RSS {largest:.0f} MB"
    else:
        memory = (f"{len(peaks)} processes ({jobs} folding), peak RSS ≤ {largest:.0f} MB "
                  f"each, ≤ {total:.0f} MB together")
    ours, raw = n_raw / seconds, n_raw / s_raw
    return [Row("4. rebuild all projections", f"{rate(n_raw, seconds)} · {seconds:.1f} s · "
                f"{memory}", f"{rate(n_raw, s_raw)} raw select+decode",
                ours / raw, "≥ 0.6× raw; 1M in < 40 s; RSS < 500 MB",
                ours / raw >= 0.6 and bool(peaks) and total < 500
                and (n_raw < 1_000_000 or seconds < 40))]


def _watch_peaks(proc: subprocess.Popen[bytes], peaks: dict[int, int]) -> None:
    """Peak resident memory (kB) of a process and of every child it starts, from their
    ``VmHWM`` in /proc, polled until it exits. (The ``ru_maxrss`` that ``wait4`` reports
    is no good here: a child started by vfork+exec inherits the high-water mark of the
    process that started it, so it reported this benchmark's own ~200 MB.)"""
    while proc.poll() is None:
        pids = [proc.pid]
        try:
            with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as listing:
                pids += [int(p) for p in listing.read().split()]
        except OSError:
            pass
        for pid in pids:
            try:
                with open(f"/proc/{pid}/status") as status:
                    for line in status:
                        if line.startswith("VmHWM:"):
                            peaks[pid] = max(peaks.get(pid, 0), int(line.split()[1]))
            except OSError:
                continue
        time.sleep(0.1)


def _replay_until(ledger: Ledger, stop: int, page: int = 5000) -> float:
    """The floor of answering "as of T" without read models: select and decode every event
    up to T's position (folding them would only add to it), with the library's mapper."""
    mapper = library_mapper()
    started = time.perf_counter()
    start = 0
    while start < stop:
        batch = ledger.recorder.select_notifications(start=start, limit=min(page, stop - start),
                                                     inclusive_of_start=False)
        if not batch:
            break
        for notification in batch:
            mapper.to_domain_event(notification)
        start = batch[-1].id
    return time.perf_counter() - started


def _timed_questions(models: ReadModels, questions: list[tuple[str, int]],
                     moments: dict[int, Any], limits: tuple[int | None, ...]
                     ) -> dict[int | None, tuple[float, float, float, float]]:
    """Per limit: p50 and p95 in ms, rows shown and obligations owed per question."""
    timings = {}
    for limit in limits:
        latencies, rows, owed = [], 0, 0
        for agency, p in questions:
            started = time.perf_counter()
            answer = models.obligations(agency, as_of=moments[p], include_groups=False,
                                        limit=limit)
            latencies.append(time.perf_counter() - started)
            rows += len(answer["obligations"])
            owed += sum(answer["counts"].values())
        timings[limit] = (percentile(latencies, 50) * 1000, percentile(latencies, 95) * 1000,
                          rows / len(questions), owed / len(questions))
    return timings


def as_of_query(url: str, *, queries: int = 300, replays: int = 5, seed: int = 7,
                page: int = 500) -> list[Row]:
    """Benchmark 5: "what did agency A owe as of T?" on the rebuilt read models, for random
    lead agencies and random moments T in the second half of the ledger's history, against
    replaying the journal up to T (select+decode only, a floor under a real replay).

    Asked as the HTTP route asks by default: without the groups' tasks, the first page of
    ``page`` obligations (counts over all). The same questions are then asked for the whole
    answer, every obligation rendered (what the CLI prints). The queries and the replays
    run with Python's collector set as in a server process (``rarer_full_collections``):
    with the default settings, full collections walking the objects a query holds were a
    fifth of its time."""
    ledger = Ledger(url)
    try:
        models = ReadModels(ledger)
        questions, moments = as_of_questions(ledger, models, queries, random.Random(seed))
        positions = [p for _, p in questions]
        models.obligations(questions[0][0], as_of=moments[positions[0]])  # warm up
        with rarer_full_collections():  # the baseline too: the same process, the same settings
            timings = _timed_questions(models, questions, moments, (page, None))
            replay = sorted(_replay_until(ledger, p) for p in positions[:replays])
    finally:
        ledger.close()
    replay_ms = replay[len(replay) // 2] * 1000
    (p50, p95, rows, owed), (w50, w95, _, _) = timings[page], timings[None]
    return [Row("5. as-of obligations query",
                f"p50 {p50:.1f} ms · p95 {p95:.1f} ms ({queries} queries; a page of "
                f"{rows:.0f} rows of {owed:.0f} owed)",
                f"replay up to T: median {replay_ms:,.0f} ms", replay_ms / p95,
                "p95 ≤ 20 ms; ≥ 100× faster than replay", p95 <= 20 and replay_ms / p95 >= 100),
            Row("   whole answer", f"p50 {w50:.1f} ms · p95 {w95:.1f} ms ({owed:.0f} rows)",
                f"replay up to T: median {replay_ms:,.0f} ms", replay_ms / w95)]
