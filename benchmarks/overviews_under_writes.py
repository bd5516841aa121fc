"""The province's overviews polled over HTTP while agencies write: with and without the
overview window (LEDGER_API_OVERVIEW_SECONDS), in one run, on the same store.

    .venv/bin/python benchmarks/overviews_under_writes.py                # 200k events
    .venv/bin/python benchmarks/overviews_under_writes.py --events 1000000 --seconds 60

Every agency's obligation counts and every head's accountability records take seconds to
compute on a large ledger (~2.5 s each at 1M). Each new event changes the projections'
freshness token, so without the window a dashboard polling them under write load has a
server thread judging for every poll. This script fills a fresh schema with the synthetic
ledger, starts `ledger serve --with-worker`, and for each setting runs ``writers`` clients
posting progress reports beside ``dashboards`` clients that each ask for one of the two
overviews (at random), then wait ``--think`` seconds, in turn. The settings: the writers
alone (the baseline), and beside the dashboards without the window and with it. It
prints, per setting: writes per second and their p50/p99, the overviews' p50/p99 and how
many events behind the newest write the answers were, and the server's CPU seconds; the
window's column is divided by the other two (same run; each setting goes first in turn
over ``--rounds``).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson
from rich.console import Console
from rich.table import Table

from benchmarks.bench_http import _catch_up, _load, make_tokens, populate, served
from benchmarks.common import cpu_seconds, fresh_schema, percentile
from domain.application import Ledger
from service.storage import ServiceTables
from service.tokens import TokenStore


def _round(base: str, targets, tokens, office: dict[str, str], paths: list[str],
           args, dashboards: int) -> dict[str, float]:
    """Writers and (``dashboards`` of them) polling dashboards at once, for ``seconds``."""
    newest = [0]  # the highest position a write was acknowledged with
    behind: list[int] = []  # per overview: how far its position was behind ``newest``
    port = base.rsplit(":", 1)[1]

    def progress(rng: random.Random):
        task, lead = rng.choice(targets)
        return "POST", f"/v1/tasks/{task}/progress-reports", {
            "Authorization": f"Bearer {tokens[lead]}"}, {"summary": "tải nền"}

    def written(status: int, body: bytes) -> None:
        if status == 200:
            newest[0] = max(newest[0], orjson.loads(body)["position"])

    def overview(rng: random.Random):
        return "GET", rng.choice(paths), office, None

    def read(status: int, body: bytes) -> None:
        if status == 200:
            behind.append(max(0, newest[0] - orjson.loads(body)["data"]["as_of"]["position"]))

    async def both():
        return await asyncio.gather(
            _load(base, progress, args.writers, args.seconds, on_answer=written),
            _load(base, overview, dashboards, args.seconds, think=args.think,
                  on_answer=read, timeout=300))

    cpu = cpu_seconds(port)["server"]
    (w_lat, w_status, elapsed), (d_lat, d_status, _) = asyncio.run(both())
    cpu = cpu_seconds(port)["server"] - cpu
    ok = sum(n for s, n in w_status.items() if 200 <= s < 300)
    nan = float("nan")
    return {"writes": ok / elapsed, "w50": percentile(w_lat, 50) * 1000,
            "w99": percentile(w_lat, 99) * 1000,
            "answers": d_status.get(200, 0) if dashboards else nan,
            "d50": percentile(d_lat, 50) * 1000 if d_lat else nan,
            "d99": percentile(d_lat, 99) * 1000 if d_lat else nan,
            "behind": statistics.median(behind) if behind else nan,
            "behind_max": max(behind) if behind else nan, "cpu": cpu,
            "cpu_per_k": cpu / ok * 1000 if ok else nan,
            "errors": sum(n for s, n in {**w_status, **d_status}.items()
                          if not 200 <= s < 300 and s not in (409, 412))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--seconds", type=float, default=30, help="per round and setting")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--dashboards", type=int, default=4)
    parser.add_argument("--think", type=float, default=1.0,
                        help="seconds a dashboard waits between two polls")
    parser.add_argument("--window", type=float, default=10.0,
                        help="LEDGER_API_OVERVIEW_SECONDS of the setting with the window")
    parser.add_argument("--workers", type=int, default=2, help="server processes")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    console = Console()
    # (label, overview window, dashboards): the writers alone are the baseline
    settings = [("alone", 0.0, 0), ("window 0 s", 0.0, args.dashboards),
                (f"window {args.window:g} s", args.window, args.dashboards)]
    results: dict[str, list[dict[str, float]]] = {label: [] for label, _, _ in settings}
    with fresh_schema("overviews") as url:
        with console.status(f"filling a store with {args.events:,} synthetic events"):
            targets = populate(url, args.events, args.seed)
            tokens = make_tokens(url, {lead for _, lead in targets})
            _catch_up(url)
        ledger = Ledger(url)
        try:
            inspector = TokenStore(ServiceTables(ledger)).create(role="inspector",
                                                                 label="bench")[0]
        finally:
            ledger.close()
        headers = {"Authorization": f"Bearer {inspector}"}
        for round_ in range(args.rounds):
            turn = round_ % len(settings)  # each setting goes first in turn
            for label, window, dashboards in settings[turn:] + settings[:turn]:
                os.environ["LEDGER_API_OVERVIEW_SECONDS"] = str(window)
                with served(url, args.workers, with_worker=True) as base:
                    period = _period(base, headers)
                    paths = ["/v1/obligation-counts", f"/v1/accountability?period={period}"]
                    got = _round(base, targets, tokens, headers, paths, args, dashboards)
                results[label].append(got)
                console.print(f"round {round_ + 1}, {label}: {got['writes']:,.0f} writes/s, "
                              f"p99 {got['w99']:.0f} ms; {got['answers']} overviews, p50 "
                              f"{got['d50']:.0f} ms, {got['behind']:.0f} events behind; "
                              f"server CPU {got['cpu']:.0f} s")
    _print(console, results, args)
    return 0


def _period(base: str, headers: dict[str, str]) -> str:
    """The year of the ledger's newest recorded moment (the synthetic ledger's dates)."""
    import json
    import urllib.request

    request = urllib.request.Request(f"{base}/v1/obligation-counts", headers=headers)
    with urllib.request.urlopen(request, timeout=300) as answer:
        meta = json.load(answer)["data"]["as_of"]
    return meta["ledger_time"][:4]


def _print(console: Console, results: dict[str, list[dict[str, float]]], args) -> None:
    def mean(label: str, key: str) -> float:
        return statistics.fmean(r[key] for r in results[label])

    alone, off, _ = results  # the settings' labels, in order (the window last)
    table = Table(title=f"Overviews polled by {args.dashboards} dashboards (every "
                        f"{args.think:g} s) beside {args.writers} writers, {args.events:,} "
                        f"events, mean of {args.rounds} rounds of {args.seconds:g} s; "
                        f"alone: the writers without dashboards")
    table.add_column("measure")
    for label in results:
        table.add_column(label, justify="right")
    table.add_column(f"÷ {off}", justify="right")
    table.add_column(f"÷ {alone}", justify="right")

    def ratio(a: float, b: float) -> str:
        return f"{a / b:.2f}×" if b and not math.isnan(a) and not math.isnan(b) else ""

    for key, label, fmt in (("writes", "writes/s", "{:,.0f}"), ("w50", "write p50 ms", "{:.1f}"),
                            ("w99", "write p99 ms", "{:.1f}"),
                            ("answers", "overviews answered", "{:,.0f}"),
                            ("d50", "overview p50 ms", "{:,.0f}"),
                            ("d99", "overview p99 ms", "{:,.0f}"),
                            ("behind", "events behind, p50", "{:,.0f}"),
                            ("behind_max", "events behind, max", "{:,.0f}"),
                            ("cpu", "server CPU s", "{:,.0f}"),
                            ("cpu_per_k", "CPU s per 1k writes", "{:.2f}"),
                            ("errors", "errors", "{:,.0f}")):
        values = [mean(setting, key) for setting in results]
        table.add_row(label, *("—" if math.isnan(v) else fmt.format(v) for v in values),
                      ratio(values[2], values[1]), ratio(values[2], values[0]))
    console.print(table)


if __name__ == "__main__":
    sys.exit(main())
