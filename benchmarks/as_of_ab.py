"""Compare the as-of obligations query of two checkouts on one store, in alternation.

    .venv/bin/python benchmarks/as_of_ab.py /tmp/before            # before vs this checkout
    .venv/bin/python benchmarks/as_of_ab.py /tmp/before /tmp/after --rounds 5 --whole
    .venv/bin/python benchmarks/as_of_ab.py /tmp/before --counts --questions 5  # every agency
    .venv/bin/python benchmarks/as_of_ab.py /tmp/before --accountability 2024  # heads' records

(``git worktree add /tmp/before HEAD~1`` makes a checkout of the code before a change.)

The machine is shared and its speed changes from one hour to the next by up to 2×, so a
change to the query is judged here the way benchmarks/README.md reports it: the two
checkouts ask the same questions (benchmark 5's: random lead agencies, random moments in
the second half of the history, without the groups' tasks), one after the other, round
after round, each in a fresh process, and every answer of one is hashed and compared with
the other's: a faster query that answers differently is a bug, not a gain.

The store (``--events``, 1M by default: ~2 minutes of import and ~2 of rebuild) is made once
in its own schema of ``LEDGER_BENCH_POSTGRES_URL`` and kept for the next comparison;
``--drop`` removes it. Both checkouts must read the same projection layout (the rebuild is
this checkout's).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent.parent


def as_of_questions(ledger: Any, models: Any, count: int, rng: random.Random
                    ) -> tuple[list[tuple[str, int]], dict[int, datetime]]:
    """Benchmark 5's questions: (lead agency, position) at random, the positions in the
    second half of the history, and the moment each position was recorded. (Here, not in
    bench_projections, so that a child asking with an older checkout's code draws them
    the same way.)"""
    last = ledger.recorder.max_notification_id() or 0
    agencies = [row["agency"] for row in models.obligation_counts()["agencies"]]
    positions = [rng.randint(last // 2, last) for _ in range(count)]
    asked = [(rng.choice(agencies), p) for p in positions]
    moments = {p: ledger.mapper.to_domain_event(
        ledger.recorder.select_notifications(start=p, limit=1)[0]).timestamp
        for p in set(positions)}
    return asked, moments


def ask(tree: str, url: str, questions: int, seed: int, whole: bool,
        counts: bool = False, period: str | None = None) -> dict[str, object]:
    """Benchmark 5's questions against ``tree``'s code (imported from there): latencies
    and a hash over every answer (without the ``as_of`` block, which names the moment).
    ``counts``: every agency's counts at each question's moment instead (the agency
    drawn is not used); ``period``: the agency's accountability records for that period."""
    sys.path.insert(0, tree)
    from domain.application import Ledger
    from projections import queries
    from projections.queries import ReadModels
    from service.collector import rarer_full_collections

    if not Path(queries.__file__).resolve().is_relative_to(Path(tree).resolve()):
        raise RuntimeError(f"imported {queries.__file__}, not {tree}'s code")

    ledger = Ledger(url)
    try:
        models = ReadModels(ledger)
        asked, moments = as_of_questions(ledger, models, questions, random.Random(seed))
        models.obligations(asked[0][0], as_of=moments[asked[0][1]])  # warm up
        digest, latencies = hashlib.sha256(), []
        with rarer_full_collections():  # as a server process and benchmark 5 ask
            for agency, p in asked:
                started = time.perf_counter()
                if counts:
                    answer = models.obligation_counts(as_of=moments[p])
                elif period:
                    answer = models.accountability(period, agency, as_of=moments[p])
                else:
                    answer = models.obligations(agency, as_of=moments[p], include_groups=False,
                                                limit=None if whole else 500)
                latencies.append(time.perf_counter() - started)
                answer.pop("as_of")
                digest.update(json.dumps(answer, sort_keys=True, default=str).encode())
    finally:
        ledger.close()
    latencies.sort()
    return {"p50": statistics.median(latencies) * 1000,
            "p95": latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))] * 1000,
            "mean": statistics.fmean(latencies) * 1000, "answers": digest.hexdigest()[:16]}


def prepare_store(schema: str, events: int, seed: int) -> str:
    """The kept store of ``events`` synthetic events with its projections rebuilt; made
    (import, then ``ledger rebuild --all``) when the schema holds none yet."""
    import psycopg

    sys.path.insert(0, str(HERE))
    from benchmarks.bench_import import fill
    from benchmarks.common import PG_URL, ensure_database, schema_url

    ensure_database()
    url = schema_url(schema)
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        ready = conn.execute("SELECT 1 FROM information_schema.tables WHERE table_schema = %s "
                             "AND table_name LIKE 'obl_task_agency_g%%'", (schema,)).fetchone()
        if ready:
            return url
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.execute(f'CREATE SCHEMA "{schema}"')
    print(f"making the store {schema}: {events:,} events, then their projections "
          "(kept for later comparisons; --drop removes it)", flush=True)
    fill(url, events, seed)
    subprocess.run([str(Path(sys.executable).parent / "ledger"), "rebuild", "--all",
                    "--grace", "0"], env={**os.environ, "LEDGER_DATABASE_URL": url},
                   check=True, stdout=subprocess.DEVNULL)
    return url


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", nargs="?", help="checkout of the code to compare against")
    parser.add_argument("after", nargs="?", default=str(HERE),
                        help="checkout of the changed code (default: this one)")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--questions", type=int, default=40, help="per round and checkout")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7, help="of the synthetic ledger")
    parser.add_argument("--whole", action="store_true",
                        help="ask for the whole answer instead of the first page of 500")
    parser.add_argument("--counts", action="store_true",
                        help="ask for every agency's counts (obligation_counts) instead")
    parser.add_argument("--accountability", metavar="PERIOD",
                        help="ask for the agency's accountability records for PERIOD instead")
    parser.add_argument("--drop", action="store_true", help="drop the kept store and stop")
    parser.add_argument("--ask", nargs=3, metavar=("TREE", "URL", "SEED"),
                        help=argparse.SUPPRESS)  # one round of one checkout (a child process)
    args = parser.parse_args()
    schema = f"as_of_ab_{args.events}_{args.seed}"
    if args.ask:
        tree, url, seed = args.ask
        print(json.dumps(ask(tree, url, args.questions, int(seed), args.whole, args.counts,
                             args.accountability)))
        return 0
    if args.drop:
        import psycopg

        sys.path.insert(0, str(HERE))
        from benchmarks.common import PG_URL
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        return 0
    if not args.before:
        parser.error("name the checkout to compare against (e.g. git worktree add /tmp/before)")
    trees = {"before": str(Path(args.before).resolve()), "after": str(Path(args.after).resolve())}
    for tree in trees.values():
        if not (Path(tree) / "projections" / "queries.py").is_file():
            parser.error(f"{tree} is not a checkout of this repository")
    url = prepare_store(schema, args.events, args.seed)
    results: dict[str, list[dict[str, object]]] = {name: [] for name in trees}
    print(f"{'round':>5}  {'code':<6} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8}  answers")
    for round_ in range(1, args.rounds + 1):
        for name, tree in trees.items():
            child = subprocess.run(
                [sys.executable, __file__, "--ask", tree, url, str(100 + round_),
                 "--questions", str(args.questions), *(["--whole"] if args.whole else []),
                 *(["--counts"] if args.counts else []),
                 *(["--accountability", args.accountability] if args.accountability else [])],
                cwd=tree, capture_output=True, text=True)
            if child.returncode != 0:
                last = (child.stderr.strip().splitlines() or ["no message"])[-1]
                print(f"error: the {name} checkout failed: {last}", file=sys.stderr)
                return 1
            got = json.loads(child.stdout.strip().splitlines()[-1])
            results[name].append(got)
            print(f"{round_:>5}  {name:<6} {got['p50']:>8.1f} {got['p95']:>8.1f} "
                  f"{got['mean']:>8.1f}  {got['answers']}", flush=True)
    same = all(b["answers"] == a["answers"]
               for b, a in zip(results["before"], results["after"], strict=True))
    means = {name: statistics.fmean(r["mean"] for r in runs)  # type: ignore[misc]
             for name, runs in results.items()}
    print(f"mean of the rounds' means: before {means['before']:.1f} ms, after "
          f"{means['after']:.1f} ms ({means['after'] / means['before']:.2f}×); answers "
          + ("identical" if same else "DIFFER"))
    return 0 if same else 2


if __name__ == "__main__":
    sys.exit(main())
