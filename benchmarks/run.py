"""Run the benchmarks and print one table with absolute figures and same-run ratios.

    scripts/bench --quick                # sets up .venv with the bench extra, then runs this
    python benchmarks/run.py --quick     # a few minutes: small sizes, whole table
    python benchmarks/run.py             # the full run behind benchmarks/README.md
    python benchmarks/run.py --only import

PostgreSQL: LEDGER_BENCH_POSTGRES_URL (default the local server, database ledger_bench,
created if missing). Each benchmark works in a fresh schema and drops it.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from rich.table import Table

from benchmarks import bench_http, bench_import, bench_projections, bench_store
from benchmarks.common import Row, fresh_schema

BENCHMARKS = ("import", "http-writes", "http-reads", "rebuild", "as-of", "verify", "lag")
SIZES = {
    "quick": {"import": 30_000, "import_baseline": 10_000, "http_events": 20_000,
              "http_seconds": 10, "as_of_queries": 300},
    "full": {"import": 1_000_000, "import_baseline": 100_000, "http_events": 200_000,
             "http_seconds": 30, "as_of_queries": 60},
}


def machine() -> str:
    cpus = os.cpu_count()
    return f"{platform.node()} · {cpus} CPU · Python {platform.python_version()}"


def in_issue_order(rows: list[Row]) -> list[Row]:
    """Sort by the benchmark's number; an unnumbered row stays under the one above it."""
    keys, number = [], 0
    for index, row in enumerate(rows):
        head = row.benchmark.strip().split(".")[0]
        number = int(head) if head.isdigit() else number
        keys.append((number, index))
    return [row for _, row in sorted(zip(keys, rows, strict=True), key=lambda kr: kr[0])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (under 5 minutes)")
    parser.add_argument("--only", action="append", default=[], choices=BENCHMARKS,
                        help="run only this one (repeatable)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--lag-windows", type=int, default=1, metavar="N",
                        help="measure the lag in N windows one after the other and show "
                             "each one's p99 (its tail comes from rare pauses)")
    parser.add_argument("--lag-embedded", action="store_true",
                        help="measure the lag with the server's embedded worker "
                             "(ledger serve --with-worker) instead of a separate ledger worker")
    args = parser.parse_args()
    if args.lag_windows < 1:
        parser.error("--lag-windows must be at least 1")
    sizes = SIZES["quick" if args.quick else "full"]
    if (any(name.startswith("http") or name == "lag" for name in args.only or BENCHMARKS)
            and importlib.util.find_spec("aiohttp") is None):
        sys.exit("error: the HTTP benchmarks need the bench extra: scripts/bench sets it up "
                 "(or .venv/bin/pip install -e '.[bench]')")
    console = Console()
    rows: list[Row] = []
    started = time.perf_counter()

    def wanted(name: str) -> bool:
        return not args.only or name in args.only

    # One big store, filled by the bulk-import benchmark, is read by the store benchmarks.
    on_store = [name for name in ("import", "verify", "rebuild", "as-of") if wanted(name)]
    if on_store:
        with fresh_schema("main") as url:
            console.print(f"[dim]import: {sizes['import']:,} events...[/]")
            rows.extend(bench_import.run(url, sizes["import"], sizes["import_baseline"],
                                         args.seed))
            if wanted("verify"):
                console.print("[dim]verify...[/]")
                rows.extend(bench_store.verification(url))
            if wanted("rebuild") or wanted("as-of"):
                console.print("[dim]rebuild...[/]")
                rebuilt = bench_projections.rebuild_all(url)
                if wanted("rebuild"):
                    rows.extend(rebuilt)
            if wanted("as-of"):
                console.print("[dim]as-of queries...[/]")
                rows.extend(bench_projections.as_of_query(
                    url, queries=sizes["as_of_queries"], seed=args.seed))
    if wanted("http-writes"):
        console.print("[dim]http writes...[/]")
        rows.extend(bench_http.run_writes(sizes["http_events"], sizes["http_seconds"],
                                          seed=args.seed))
    if wanted("http-reads"):
        console.print("[dim]http reads...[/]")
        rows.extend(bench_http.run_reads(sizes["http_events"], sizes["http_seconds"],
                                         seed=args.seed))
    if wanted("lag"):
        console.print("[dim]projection lag...[/]")
        rows.extend(bench_http.run_lag(sizes["http_events"], sizes["http_seconds"],
                                       seed=args.seed, windows=args.lag_windows,
                                       embedded=args.lag_embedded))
    rows = in_issue_order(rows)
    table = Table(title=f"chidao-ledger benchmarks, {datetime.now():%d/%m/%Y %H:%M} "
                        f"({'quick' if args.quick else 'full'}) — {machine()}")
    for column in ("benchmark", "ours", "baseline (same run)", "ratio", "target", "met"):
        table.add_column(column)
    for row in rows:
        ratio = f"{row.ratio:.2f}×" if row.ratio is not None else ""
        met = {True: "[green]yes[/]", False: "[red]no[/]", None: ""}[row.met]
        table.add_row(row.benchmark, row.ours, row.baseline, ratio, row.target, met)
    console.print(table)
    for row in rows:
        if row.note:
            console.print(f"  {row.benchmark.split(',')[0].strip()}: {row.note}")
    console.print(f"[dim]total {time.perf_counter() - started:.0f} s[/]")


if __name__ == "__main__":
    main()
