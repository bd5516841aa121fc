"""Crash drill: kill -9 the ledger's processes at random moments under write load, then
check that every acknowledged write is in the store, exactly once.

    python -m drills.crash                      # 20 rounds (the default)
    python -m drills.crash --rounds 200         # long mode
    python -m drills.crash --base-url postgresql://postgres@127.0.0.1:5432/ledger_test

Each round starts the targets (`ledger serve` with several workers and `ledger worker`),
runs writers (progress reports and directives with three tasks, each with an
Idempotency-Key) against them, and after a random time kill -9s a randomly chosen target's whole
process group. The client logs every acknowledged write (key, positions, entity, version).
Writes cut off by the kill are *in doubt*; after the last round the server is started once
more and every in-doubt write is retried with its key: it must be replayed (it had been
stored) or be stored now, never twice. The verdict (drills.common.verify) compares the log
with the journal. PostgreSQL itself is never killed here (see drills/db_outage.py); the
drill works in a fresh schema of the server at --base-url and drops it afterwards.

Figures printed: rounds, writes sent / acknowledged / in doubt at kills, how the doubtful
ones resolved, restart-to-ready times, events stored, position gaps.

The projection worker is in the kill rotation too: each round kills either `ledger serve`
(every worker process) or `ledger worker` at a random moment. At the end the worker catches
up from wherever it was killed, and every projection table must equal a copy rebuilt from
zero (compared by digests of every row and version).
"""

from __future__ import annotations

import argparse
import hashlib
import random
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from statistics import mean

from drills.common import (
    DEFAULT_PG,
    LoadLog,
    LoadRunner,
    Server,
    Worker,
    fresh_schema,
    log,
    prepare_ledger,
    print_figures,
    resolve_in_doubt,
    verify,
)


@dataclass
class Target:
    """A process kind in the kill rotation."""

    name: str
    command: Callable[[str], list[str]] | None = None  # None: the HTTP server itself
    process: subprocess.Popen | None = None
    kills: int = 0


def targets() -> list[Target]:
    return [Target("serve"), Target("worker")]


def projections_match_a_rebuild(url: str) -> list[str]:
    """Catch the read models up, then compare every live table with a copy built from
    zero beside it; the names of the tables that differ (empty: all equal)."""
    from domain.application import Ledger
    from projections import registry
    from projections.db import Db
    from projections.rebuild import build_copy, drop_generation
    from projections.runner import Runner, all_projections
    from projections.tables import table_digest

    ledger = Ledger(url)
    built: dict[str, int] = {}
    try:
        Runner(ledger).catch_up()
        db = Db(ledger)
        with db.read() as cur:
            live = {n: g.generation for n, g in registry.live_generations(cur, db).items()}
        for projection in all_projections():
            built[projection.name] = build_copy(ledger, projection.name,
                                                until=db.head_position())
        differ = []
        with db.read() as cur:
            for projection in all_projections():
                for spec in projection.tables:
                    if (table_digest(cur, db, spec, live[projection.name])
                            != table_digest(cur, db, spec, built[projection.name])):
                        differ.append(spec.name)
        return differ
    finally:
        for name, generation in built.items():
            drop_generation(ledger, name, generation)
        ledger.close()


def table_digest(url: str, tables: list[str]) -> str:
    """SHA-256 over the sorted rows of ``tables`` (schema from the URL): two stores with the
    same rows digest the same, whatever their physical order."""
    import psycopg

    from domain.persistence.url import parse_store_url

    env = parse_store_url(url).env
    digest = hashlib.sha256()
    with psycopg.connect(dbname=env["POSTGRES_DBNAME"], host=env["POSTGRES_HOST"],
                         port=env["POSTGRES_PORT"], user=env["POSTGRES_USER"],
                         password=env["POSTGRES_PASSWORD"] or None) as conn:
        for table in sorted(tables):
            rows = conn.execute(
                f'SELECT * FROM "{env["POSTGRES_SCHEMA"]}"."{table}"').fetchall()
            digest.update(table.encode())
            for row in sorted(repr(r) for r in rows):
                digest.update(row.encode())
    return digest.hexdigest()


@dataclass
class CrashDrill:
    url: str
    rounds: int = 20
    writers: int = 8
    workers: int = 2
    min_up: float = 0.2
    max_up: float = 2.0
    seed: int = 7
    load: LoadLog = field(default_factory=LoadLog)
    ready_times: list[float] = field(default_factory=list)
    in_doubt_at_kills: int = 0

    def run(self) -> dict:
        rng = random.Random(self.seed)
        prepared = prepare_ledger(self.url)
        rotation = targets()
        server = Server(self.url, workers=self.workers)
        worker = Worker(self.url)
        log(f"crash drill: {self.rounds} rounds, {self.writers} writers, "
            f"{self.workers} server workers, kill after {self.min_up}-{self.max_up}s")
        for round_no in range(1, self.rounds + 1):
            if server.process is None:
                server.start()
                self.ready_times.append(server.wait_ready())
            if not worker.running:
                worker.start()
            runner = LoadRunner(server.base, prepared, self.load, writers=self.writers,
                                seed=rng.randrange(2**32), run=f"r{round_no:04d}")
            runner.start()
            time.sleep(rng.uniform(self.min_up, self.max_up))
            victim = rng.choice(rotation)
            victim.kills += 1
            (server if victim.name == "serve" else worker).kill9()
            runner.stop()
            doubtful = len(self.load.in_doubt())
            log(f"  round {round_no:>3}: killed {victim.name}; acknowledged so far "
                f"{len(self.load.acknowledged())}, in doubt {doubtful}")
        self.in_doubt_at_kills = len(self.load.in_doubt())
        worker.kill9()
        return self.finish(server, rotation)

    def finish(self, server: Server, rotation: list[Target]) -> dict:
        if server.process is None:
            server.start()
        server.wait_ready()
        doubtful = self.load.in_doubt()
        resolve_in_doubt(server.base, self.load)
        server.stop()
        differing = projections_match_a_rebuild(self.url)
        replayed = sum(1 for o in doubtful if o.replayed)
        verdict = verify(self.url, self.load)
        figures = {
            "rounds": self.rounds,
            "kills": {t.name: t.kills for t in rotation},
            **verdict.figures,
            "in doubt after the kills": self.in_doubt_at_kills,
            "  of which had been stored (replayed)": replayed,
            "  of which were stored on retry": sum(
                1 for o in doubtful if o.status is not None and o.status < 300
                and not o.replayed),
            "restart to ready (s), mean / max": (
                f"{mean(self.ready_times):.2f} / {max(self.ready_times):.2f}"),
            "projection tables equal to a rebuild": (
                "all" if not differing else f"NOT: {', '.join(differing)}"),
            "failures": len(verdict.failures) + len(differing),
        }
        print_figures("crash drill figures", figures)
        for failure in verdict.failures[:20]:
            log(f"  FAILURE: {failure}")
        failures = verdict.failures + [f"projection table {t} differs from a rebuild"
                                       for t in differing]
        return {"figures": figures, "failures": failures}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="ledger serve --workers")
    parser.add_argument("--min-up", type=float, default=0.2)
    parser.add_argument("--max-up", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--base-url", default=DEFAULT_PG,
                        help="PostgreSQL server; the drill works in a fresh schema there")
    parser.add_argument("--keep", action="store_true", help="keep the schema afterwards")
    args = parser.parse_args(argv)
    url, drop = fresh_schema(args.base_url, "crash")
    try:
        result = CrashDrill(url, rounds=args.rounds, writers=args.writers,
                            workers=args.workers, min_up=args.min_up, max_up=args.max_up,
                            seed=args.seed).run()
    finally:
        if args.keep:
            log(f"kept {url}")
        else:
            drop()
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
