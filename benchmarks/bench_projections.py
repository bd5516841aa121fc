"""Read-model benchmarks on the bulk-imported store (benchmarks 4 and 5).

4. Rebuild of all projections from zero (events/s, peak RSS) vs raw select+decode of the
   same events: `ledger rebuild --all` runs as a child process, so its peak RSS is its own.
5. Point-in-time obligations query (p50/p95) vs replaying the journal up to T.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.bench_store import raw_select_decode
from benchmarks.common import Row, rate
from domain.application import Ledger

LEDGER = str(Path(sys.executable).parent / "ledger")


def rebuild_all(url: str) -> list[Row]:
    ledger = Ledger(url)
    try:
        n_raw, s_raw = raw_select_decode(ledger)
    finally:
        ledger.close()
    env = {**os.environ, "LEDGER_DATABASE_URL": url, "COLUMNS": "120"}
    started = time.perf_counter()
    proc = subprocess.Popen([LEDGER, "rebuild", "--all", "--json", "--grace", "0"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = proc.stdout.read() if proc.stdout else b""
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    if status != 0:
        raise RuntimeError(f"ledger rebuild failed (status {status})")
    json.loads(out)  # it answered what it built
    rss_mb = usage.ru_maxrss / 1024
    ours, raw = n_raw / seconds, n_raw / s_raw
    return [Row("4. rebuild all projections", f"{rate(n_raw, seconds)} · {seconds:.1f} s · "
                f"peak RSS {rss_mb:.0f} MB", f"{rate(n_raw, s_raw)} raw select+decode",
                ours / raw, "≥ 0.6× raw; 1M in < 40 s; RSS < 500 MB",
                ours / raw >= 0.6 and rss_mb < 500 and (n_raw < 1_000_000 or seconds < 40))]
