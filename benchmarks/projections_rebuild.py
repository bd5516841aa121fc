"""Rebuild throughput of the read models.

    .venv/bin/python benchmarks/projections_rebuild.py --events 200000 --store sqlite
    .venv/bin/python benchmarks/projections_rebuild.py --events 200000 --store postgres \
        --url postgresql://postgres@127.0.0.1:5432/ledger_test

Seeds a fresh store (a temporary SQLite file, or a new PostgreSQL schema dropped afterwards)
with synthetic directives (20 tasks each, every kind of deadline) and a stream of progress
reports, extension requests and grants, completion reports and confirmations — written in
big batches straight through the aggregates, not one command at a time — then rebuilds each
projection, and all three in one pass, and prints what it measured.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from domain.actors import system_context
from domain.application import Ledger
from domain.ids import task_id
from domain.plan_annex import parse_plan_annex
from domain.specs import DirectiveSpec, TaskSpec
from projections.rebuild import rebuild

DEADLINES = ("Hằng năm", "Quý IV năm 2021", "chậm nhất ngày 30/6/2022", "Năm 2022",
             "Định kỳ hằng quý", "Thường xuyên", "Trước 25/12 năm báo cáo")
LEADS = ("QNG-SNV", "QNG-STC", "QNG-STP", "QNG-STTTT", "QNG-SKHDT", "QNG-SYT", "QNG-SGDDT",
         "QNG-SXD", "QNG-SCT", "QNG-TPQN")


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2021, 9, 1, 2, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@contextmanager
def store(kind: str, url: str | None):
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as directory:
            yield f"sqlite:///{directory}/bench.db"
        return
    import psycopg

    base = url or "postgresql://postgres@127.0.0.1:5432/ledger_test"
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = urlunsplit(urlsplit(base)._replace(query=""))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{admin}?schema={schema}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def seed(ledger: Ledger, clock: Clock, events: int, seed_value: int = 7) -> int:
    rng = random.Random(seed_value)
    ctx = system_context("bench")
    sample = Path(__file__).resolve().parents[1] / "cli/samples"
    annex = parse_plan_annex((sample / "quang-ngai-768-QD-UBND-2021-ke-hoach-cchc.txt")
                             .read_text("utf-8"), source="768")
    ledger.issue_directive(ctx, annex.spec, register_agencies=annex.reference.agencies)
    directives = max(1, events // 400)
    tasks = []
    for n in range(directives):
        spec = DirectiveSpec(
            number=f"{1000 + n}/UBND-KSTT", issuer="QNG-UBND", assigning_office="QNG-VPUBND",
            issued_on=date(2021, 8, 30), title=f"Văn bản thử {n}", plan_last_year=2025,
            tasks=tuple(TaskSpec(str(i + 1), f"Nhiệm vụ {i + 1}", LEADS[(n + i) % len(LEADS)],
                                 DEADLINES[i % len(DEADLINES)]) for i in range(20)))
        receipt = ledger.issue_directive(ctx, spec)
        tasks += [task_id(receipt.entity_id, str(i + 1)) for i in range(20)]
    written = ledger.recorder.max_notification_id()
    batch = []
    while written < events:
        clock.now += timedelta(minutes=7)
        today = (clock.now + timedelta(hours=7)).date()
        for tid in rng.sample(tasks, min(len(tasks), 200)):
            task = ledger.task(tid)
            kind = task.deadline.kind.value
            key = None if kind != "recurring" else str(rng.choice((2021, 2022, 2023)))
            if kind == "recurring" and task.deadline.frequency.value == "quarterly":
                key = f"{rng.choice((2022, 2023))}-Q{rng.randint(1, 4)}"
            stamp = {"meta": ctx.meta(), "timestamp": clock.now}
            try:
                roll = rng.random()
                if kind == "standing" or roll < 0.6:
                    task.report_progress(occurrence=key, reported_on=today, percent=None,
                                         summary="Tiến độ", reporter=task.lead, **stamp)
                elif roll < 0.8:
                    task.request_extension(occurrence=key, requested_due=today + timedelta(30),
                                           reason="Gia hạn", rulebook=ledger.rulebook, **stamp)
                    task.grant_extension(occurrence=key, new_due=None, note=None, **stamp)
                else:
                    task.report_completion(occurrence=key, completed_on=today, document=None,
                                           summary="Xong", **stamp)
                    task.confirm_completion(occurrence=key, note=None, **stamp)
            except Exception:
                continue
            batch.append(task)
        written += sum(len(t.pending_events) for t in batch)
        ledger.save(*batch)
        batch = []
    return ledger.recorder.max_notification_id()


def timed(label: str, fn) -> tuple[str, float]:
    started = time.perf_counter()
    fn()
    return label, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--url", default=None)
    parser.add_argument("--page-size", type=int, default=2000)
    args = parser.parse_args()
    with store(args.store, args.url) as url:
        clock = Clock()
        ledger = Ledger(url, clock=clock)
        started = time.perf_counter()
        total = seed(ledger, clock, args.events)
        print(f"seeded {total} events in {time.perf_counter() - started:.1f}s ({args.store})")
        results = []
        for name in ("obligations", "accountability", "audit"):
            results.append(timed(name, lambda n=name: rebuild(
                ledger, [n], page_size=args.page_size, grace=0)))
        results.append(timed("all three, one pass", lambda: rebuild(
            ledger, None, page_size=args.page_size, grace=0)))
        print(f"\n{'rebuild':<22} {'events':>9} {'seconds':>9} {'events/s':>10} {'events/min':>12}")
        for label, seconds in results:
            print(f"{label:<22} {total:>9} {seconds:>9.1f} {total / seconds:>10,.0f} "
                  f"{total / seconds * 60:>12,.0f}")
        ledger.close()


if __name__ == "__main__":
    main()
