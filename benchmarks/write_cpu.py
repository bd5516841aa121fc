"""Where the CPU of an HTTP write goes: the server's processes, PostgreSQL and the client.

    .venv/bin/python benchmarks/write_cpu.py                    # 20k events, 20 s of wrk
    .venv/bin/python benchmarks/write_cpu.py --events 200000 --seconds 30 --rounds 2

Benchmark 2 says how many commands a second the server takes and how long they wait; on
two shared cores both follow from how much CPU a command costs, and whose. This script
fills a fresh schema (``benchmarks/bench_http.populate``), starts ``ledger serve`` as
benchmark 2 does, posts the same progress reports from wrk (64 connections, each report
to a random open task with its lead agency's token and a fresh Idempotency-Key), and reads
every process's CPU time from ``/proc`` before and after each window
(``benchmarks.common.cpu_seconds``): per command, the server's processes, PostgreSQL's
and wrk's (this script's finished children). Linux and wrk only.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from rich.table import Table

from benchmarks import bench_http
from benchmarks.common import cpu_seconds, fresh_schema


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def window(base: str, targets: list[tuple[str, str]], tokens: dict[str, str],
           seconds: float) -> dict[str, float]:
    """One wrk window: the rate and CPU seconds a command per kind of process."""
    port = base.rsplit(":", 1)[1]
    before, client_before = cpu_seconds(port), children_cpu()
    result = bench_http._wrk_writes(base, targets, tokens, 64, seconds)
    after, client_after = cpu_seconds(port), children_cpu()
    if result is None:
        raise SystemExit("error: wrk is not installed")
    rate, _p50, p99, failed = result
    used = {kind: after[kind] - before[kind] for kind in ("server", "postgres")}
    used["wrk"] = client_after - client_before
    commands = rate * seconds
    return {"rate": rate, "p99": p99, "failed": failed,
            **{kind: cpu / commands * 1000 for kind, cpu in used.items()},
            "cores": sum(used.values()) / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("error: wrk is not installed (apt-get install wrk)")
    if not Path("/proc/self/stat").exists():
        raise SystemExit("error: reads CPU times from /proc (Linux only)")
    with fresh_schema("cpu") as url:
        targets = bench_http.populate(url, args.events, 7)
        tokens = bench_http.make_tokens(url, {lead for _, lead in targets})
        with bench_http.served(url, args.workers) as base:
            bench_http._wrk_writes(base, targets, tokens, 64, 3)  # warm the caches
            rows = []
            for _ in range(args.rounds):
                rows.append(window(base, targets, tokens, args.seconds))
                time.sleep(1)
    table = Table(title=f"CPU a command: {args.events:,} events, {args.workers} server "
                        f"processes, wrk 64 connections, {args.seconds:.0f} s a round")
    for column in ("round", "cmd/s", "p99 ms", "server ms", "PostgreSQL ms", "wrk ms",
                   "cores used"):
        table.add_column(column, justify="right")
    for n, row in enumerate(rows, start=1):
        table.add_row(str(n), f"{row['rate']:,.0f}", f"{row['p99']:.1f}",
                      f"{row['server']:.3f}", f"{row['postgres']:.3f}", f"{row['wrk']:.3f}",
                      f"{row['cores']:.2f}" + (f" ({row['failed']} failed)" if row["failed"]
                                               else ""))
    Console().print(table)


if __name__ == "__main__":
    main()
