"""Database outage drill: stop PostgreSQL under write load, start it again, and check that
the API failed cleanly meanwhile and recovered by itself.

    python -m drills.db_outage                         # 4 s of load, 6 s down, 4 s after
    python -m drills.db_outage --down 30 --outages 3   # longer, several outages
    python -m drills.db_outage --stop-mode immediate   # the server dies (crash recovery)

The drill creates its own disposable cluster (initdb into a temporary directory, a free
port) and never touches another server. It starts `ledger serve` (several workers) and
`ledger worker` on it, runs writers, stops PostgreSQL (`pg_ctl stop -m fast|immediate`),
keeps the writers going, starts PostgreSQL again, and keeps going a little longer, without
restarting the API or the worker.

Checked: while the database is down every write is answered 503 problem+json with
Retry-After (never another 5xx, never a hang beyond the client's timeout), /healthz stays
200 and /readyz turns 503; after the restart the same server processes answer writes again
(no restart); every acknowledged write is in the journal exactly once; writes cut off by
the outage either were stored whole (a directive with all its tasks) or not at all, and
their retry with the same Idempotency-Key settles them; the worker is still running, catches
up with the journal by itself, and its tables equal a copy rebuilt from zero.

Figures printed: writes acknowledged before / during / after, answers during the outage by
status, the slowest answer during the outage, seconds from "database started" to the first
acknowledged write and to /readyz 200, how long the worker took to catch up once the load
stopped, and the verdict's figures.
"""

from __future__ import annotations

import argparse
import faulthandler
import signal
import threading
import time
from dataclasses import dataclass, field

import httpx

from drills.common import (
    Cluster,
    LoadLog,
    LoadRunner,
    Server,
    Worker,
    log,
    prepare_ledger,
    print_figures,
    resolve_in_doubt,
    verify,
)


@dataclass
class Probe:
    """Samples /healthz and /readyz during the drill. Each sample keeps when its request was
    sent and when it was answered: a request sent just before the database stops can be
    answered 200 just after, and is not an answer "while down"."""

    base: str
    samples: list[tuple[float, float, str, int | str]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=15) as client:
            while not self.stop.is_set():
                for path in ("/healthz", "/readyz"):
                    sent = time.monotonic()
                    try:
                        status: int | str = client.get(path).status_code
                    except httpx.TransportError as exc:
                        status = type(exc).__name__
                    self.samples.append((sent, time.monotonic(), path, status))
                time.sleep(0.1)


def run_drill(*, before: float = 4, down: float = 6, after: float = 4, outages: int = 1,
              writers: int = 8, workers: int = 2, stop_mode: str = "fast",
              seed: int = 11) -> dict:
    cluster = Cluster().create()
    server = None
    worker = None
    probe = None
    try:
        import psycopg

        with psycopg.connect(cluster.url(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE ledger")
        # A password in the URL (trust auth ignores it) lets the drill check it is never
        # logged.
        url = cluster.url("ledger", schema="quang_ngai", password="drill-db-secret")
        prepared = prepare_ledger(url)
        server = Server(url, workers=workers)
        server.start()
        server.wait_ready()
        worker = Worker(url)
        worker.start()
        load = LoadLog()
        probe = Probe(server.base)
        probe_thread = threading.Thread(target=probe.run, daemon=True)
        probe_thread.start()
        runner = LoadRunner(server.base, prepared, load, writers=writers, seed=seed,
                            run="outage", timeout=30)
        log(f"db outage drill: {writers} writers, {workers} server workers, cluster on port "
            f"{cluster.port}; {before}s up, then {outages} x ({down}s down, {after}s up)")
        runner.start()
        time.sleep(before)
        windows = []
        for n in range(1, outages + 1):
            cluster.stop(stop_mode)
            stopped_at = time.monotonic()  # from here PostgreSQL is certainly down...
            log(f"  outage {n}: PostgreSQL stopped ({stop_mode})")
            time.sleep(down)
            restarting_at = time.monotonic()  # ...until here
            cluster.start()
            started_at = time.monotonic()
            log(f"  outage {n}: PostgreSQL started after {started_at - stopped_at:.1f}s")
            windows.append((stopped_at, restarting_at, started_at))
            time.sleep(after)
        runner.stop()
        probe.stop.set()
        probe_thread.join(timeout=30)
        resolve_in_doubt(server.base, load)
        verdict = verify(url, load)
        worker_figures = _worker_recovered(url, worker)
        server_log = server.output() + worker.output()
        server.stop()
        worker.stop()
        return _figures(load, probe, windows, verdict, server_log, worker_figures)
    finally:
        if probe is not None:
            probe.stop.set()
        if server is not None:
            server.stop()
        if worker is not None:
            worker.stop()
        cluster.destroy()


def _worker_recovered(url: str, worker: Worker, timeout: float = 60) -> dict:
    """The projection worker, never restarted, must still run after the outages and catch up
    with the journal by itself; then its tables must equal a copy rebuilt from zero."""
    from domain.application import Ledger
    from drills.crash import projections_match_a_rebuild
    from projections import registry
    from projections.db import Db

    ledger = Ledger(url)
    started = time.monotonic()
    caught_up = None
    try:
        db = Db(ledger)
        head = db.head_position()
        while time.monotonic() - started < timeout and worker.running:
            with db.read() as cur:
                live = registry.live_generations(cur, db)
            if live and min(g.position for g in live.values()) >= head:
                caught_up = time.monotonic() - started
                break
            time.sleep(0.1)
    finally:
        ledger.close()
    alive = worker.running
    differ = projections_match_a_rebuild(url) if caught_up is not None else ["(not caught up)"]
    last_words = [line for line in worker.output().splitlines() if line.strip()][-1:]
    return {"alive": alive, "caught_up": caught_up, "differ": differ,
            "last_words": last_words[0] if last_words else ""}


def _figures(load: LoadLog, probe: Probe, windows, verdict, server_log: str,
             worker: dict) -> dict:
    failures = list(verdict.failures)
    if not worker["alive"]:
        failures.append(f"the projection worker died during the outages; its last line: "
                        f"{worker['last_words']!r}")
    if worker["caught_up"] is None:
        failures.append("the projection worker did not catch up with the journal by itself")
    if worker["differ"]:
        failures.append(f"projection tables differ from a rebuild: {worker['differ']}")
    first_stop, last_start = windows[0][0], windows[-1][2]

    def during(t: float) -> bool:
        return any(a <= t <= b for a, b, _ in windows)

    answered_down = [(s, e, st) for s, e, st in load.timeline if during(s) and during(e)]
    statuses_down: dict = {}
    for _, _, status in answered_down:
        statuses_down[status] = statuses_down.get(status, 0) + 1
    bad = {k: v for k, v in statuses_down.items() if k not in (503,)}
    if not answered_down:
        failures.append("no write was answered while the database was down")
    if bad:
        failures.append(f"while the database was down, writes were answered {bad} "
                        "(expected only 503)")
    slowest = max((e - s for s, e, _ in answered_down), default=0.0)
    recoveries = []
    for _, _, started in windows:
        acks = [e for s, e, st in load.timeline if st in (200, 201) and s >= started]
        recoveries.append(min(acks) - started if acks else None)
    if any(r is None for r in recoveries):
        failures.append("no write was acknowledged after the database came back")
    ready_after = []
    for _, _, started in windows:
        ready = [t for _, t, path, st in probe.samples if path == "/readyz" and st == 200
                 and t >= started]
        ready_after.append(min(ready) - started if ready else None)
    health_down = {st for s, e, path, st in probe.samples
                   if path == "/healthz" and during(s) and during(e)}
    ready_down = {st for s, e, path, st in probe.samples
                  if path == "/readyz" and during(s) and during(e)}
    if health_down - {200}:
        failures.append(f"/healthz answered {health_down} during the outage")
    if 503 not in ready_down:
        failures.append(f"/readyz never answered 503 during the outage ({ready_down})")
    if "drill-db-secret" in server_log:
        failures.append("the database password appears in the server's or worker's output")
    acked = [(s, e) for s, e, st in load.timeline if st in (200, 201)]
    figures = {
        "outages": len(windows),
        "seconds down (each)": ", ".join(f"{c - a:.1f}" for a, _, c in windows),
        "writes acknowledged before / during / after": (
            f"{sum(e < first_stop for s, e in acked)} / "
            f"{sum(during(e) for s, e in acked)} / {sum(s > last_start for s, e in acked)}"),
        "answers while down, by status": statuses_down,
        "slowest answer while down (s)": round(slowest, 2),
        "slowest write answer of the whole drill (s)": round(
            max((e - s for s, e, _ in load.timeline), default=0.0), 2),
        "database start -> first acknowledged write (s)": ", ".join(
            "never" if r is None else f"{r:.2f}" for r in recoveries),
        "database start -> /readyz 200 (s)": ", ".join(
            "never" if r is None else f"{r:.2f}" for r in ready_after),
        "worker (never restarted) caught up after the load (s)": (
            "never" if worker["caught_up"] is None else round(worker["caught_up"], 2)),
        "projection tables equal to a rebuild": "all" if not worker["differ"] else "NO",
        "/healthz while down": sorted(map(str, health_down)),
        "/readyz while down": sorted(map(str, ready_down)),
        **verdict.figures,
        "failures": len(failures),
    }
    print_figures("db outage drill figures", figures)
    for failure in failures[:20]:
        log(f"  FAILURE: {failure}")
    return {"figures": figures, "failures": failures}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=float, default=4, help="seconds of load first")
    parser.add_argument("--down", type=float, default=6, help="seconds the database is down")
    parser.add_argument("--after", type=float, default=4, help="seconds of load after")
    parser.add_argument("--outages", type=int, default=1)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="ledger serve --workers")
    parser.add_argument("--stop-mode", choices=("smart", "fast", "immediate"), default="fast")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)
    faulthandler.register(signal.SIGUSR1)  # kill -USR1 <pid>: where is the drill stuck?
    result = run_drill(before=args.before, down=args.down, after=args.after,
                       outages=args.outages, writers=args.writers, workers=args.workers,
                       stop_mode=args.stop_mode, seed=args.seed)
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
