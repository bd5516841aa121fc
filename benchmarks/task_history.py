"""Does a command cost more on a task with a long history?

    .venv/bin/python benchmarks/task_history.py                      # PostgreSQL (bench database)
    .venv/bin/python benchmarks/task_history.py --reports 0 50 200 --tasks 100

A task reported on weekly for a few years has hundreds of events. Every command on it loads
the task: from the server's cache (the library fast-forwards the cached copy and deep-copies
it) or, on a miss, by replaying its events. This script fills a fresh schema with a small
synthetic ledger, gives groups of open tasks 0, 50 and 200 progress reports each (saved in
bulk), then times, per task, loading it (evicted from the cache, then cached) and one
progress report through ``Ledger.report_progress`` (likewise). The baseline, measured in the
same run, is the group with no extra reports: the ratios say how the cost grows.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from uuid import UUID

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from rich.table import Table

from benchmarks.bench_http import populate
from benchmarks.common import fresh_schema
from domain.actors import Actor, CommandContext, Role
from domain.application import Ledger
from domain.clock import local_date


def add_reports(ledger: Ledger, tasks: list[tuple[str, str]], reports: int) -> int:
    """``reports`` progress reports on each task, saved 20 tasks to a transaction."""
    saved = 0
    for start in range(0, len(tasks), 20):
        loaded = []
        for tid, lead in tasks[start:start + 20]:
            task = ledger.task(UUID(tid))
            for n in range(reports):
                now = ledger.clock()
                task.report_progress(occurrence=None, reported_on=local_date(now),
                                     percent=n % 100, summary=f"Báo cáo tuần {n + 1}",
                                     reporter=lead, obstacles=None,
                                     meta={"actor": "bench"}, timestamp=now)
            loaded.append(task)
        saved += sum(len(task.pending_events) for task in loaded)
        ledger.save(*loaded, after_insert=ledger.after_insert_hooks)
    return saved


def _evict(ledger: Ledger, tid: UUID) -> None:
    try:
        ledger.repository.cache.get(tid, evict=True)
    except KeyError:
        pass


def _seconds(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def timed(ledger: Ledger, tasks: list[tuple[str, str]]) -> dict[str, list[float]]:
    """Seconds per task: loading it (not cached, then cached), and a progress report on it
    (not cached, then cached: the report's transaction is in both)."""
    times: dict[str, list[float]] = {name: [] for name in COLUMNS}
    for text, lead in tasks:
        tid = UUID(text)
        ctx = CommandContext(Actor(f"token:{lead}", Role.AGENCY, lead))

        def report(ctx=ctx, tid=tid) -> None:
            ledger.report_progress(ctx, tid, summary="Đã triển khai theo kế hoạch")

        _evict(ledger, tid)
        times["load, not cached"].append(_seconds(lambda tid=tid: ledger.task(tid)))
        times["load, cached"].append(_seconds(lambda tid=tid: ledger.task(tid)))
        times["report, cached"].append(_seconds(report))
        _evict(ledger, tid)
        times["report, not cached"].append(_seconds(report))
    return times


COLUMNS = ("load, not cached", "load, cached", "report, not cached", "report, cached")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, nargs="+", default=[0, 50, 200],
                        help="history lengths to compare (the first is the baseline)")
    parser.add_argument("--tasks", type=int, default=100, help="tasks per history length")
    parser.add_argument("--events", type=int, default=20_000, help="synthetic ledger size")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    console = Console()
    with fresh_schema("history") as url:
        console.print(f"[dim]synthetic ledger: {args.events:,} events...[/]")
        targets = populate(url, args.events, args.seed)
        needed = args.tasks * len(args.reports)
        if len(targets) < needed:
            sys.exit(f"error: {len(targets)} open tasks, {needed} needed: raise --events")
        ledger = Ledger(url)
        try:
            groups = {k: targets[i * args.tasks:(i + 1) * args.tasks]
                      for i, k in enumerate(args.reports)}
            for reports, tasks in groups.items():
                if reports:
                    console.print(f"[dim]{reports} reports on each of {len(tasks)} tasks...[/]")
                    add_reports(ledger, tasks, reports)
            rows = {k: timed(ledger, tasks) for k, tasks in groups.items()}
        finally:
            ledger.close()
    base = {name: statistics.median(values) for name, values in rows[args.reports[0]].items()}
    table = Table(title="A task by the length of its history: loading it, and a progress "
                        f"report on it ({args.tasks} tasks each, PostgreSQL; medians)")
    table.add_column("history")
    for name in COLUMNS:
        table.add_column(name)
    for reports, times in rows.items():
        cells = []
        for name in COLUMNS:
            median = statistics.median(times[name])
            cells.append(f"{median * 1000:.2f} ms ({median / base[name]:.2f}×)")
        table.add_row(f"+{reports} reports", *cells)
    console.print(table)
    console.print("[dim]ratios against the first row (measured in the same run). A report "
                  "includes its transaction (a few ms here), the same for every row.[/]")


if __name__ == "__main__":
    main()
