"""Measure the hash chain: cost on the write path, verification and bundle speed.

    .venv/bin/python benchmarks/integrity.py [--events 200000] [--batch 1000]
        [--postgres postgresql://postgres@127.0.0.1:5432/ledger_test]

Prints one table row per store: bulk-save throughput with and without the chain hook,
``verify`` (store) and ``verify-bundle`` (offline) in events per second, bundle size.
Stores are created in a temporary directory / a temporary schema and removed afterwards.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from domain.agency import Agency, AgencyLevel
from domain.application import Ledger
from domain.integrity import verify_ledger
from domain.integrity.bundle import export_bundle, verify_bundle
from domain.integrity.verify import Report, walk


def agencies(n: int, start: int, clock) -> list[Agency]:
    meta = {"actor": "bench", "actor_role": "system", "actor_agency": None,
            "correlation_id": uuid.uuid4().hex, "causation_id": None, "source_document": None}
    return [Agency.register(code=f"B-{start + i}", name=f"Cơ quan đo hiệu năng số {start + i}",
                            level=AgencyLevel.PROVINCIAL, parent=None,
                            aliases=["Tên gọi khác của cơ quan"], established_on=None,
                            member_levels=[], meta=meta, timestamp=clock())
            for i in range(n)]


def fill(ledger: Ledger, events: int, batch: int, *, chained: bool) -> float:
    hooks = ledger.after_insert_hooks if chained else []
    started = time.perf_counter()
    done = 0
    while done < events:
        n = min(batch, events - done)
        ledger.save(*agencies(n, done + (0 if chained else 10**9), ledger.clock),
                    after_insert=hooks)
        done += n
    return events / (time.perf_counter() - started)


def measure(url: str, plain_url: str, events: int, batch: int,
            workdir: Path) -> dict[str, str]:
    ledger = Ledger(url)
    try:
        with_chain = fill(ledger, events, batch, chained=True)
        # The same writes without the hook, into a second store, for comparison.
        other = Ledger(plain_url)
        try:
            without = fill(other, events, batch, chained=False)
        finally:
            other.close()
        started = time.perf_counter()
        report = verify_ledger(ledger)
        verify_rate = report.events / (time.perf_counter() - started)
        assert report.ok, report.summary()
        # The walk alone, over rows already in memory (hashing and merging only).
        with ledger.integrity.snapshot() as reader:
            event_pages = list(reader.events(1))
            chain_pages = list(reader.chain(1))
        started = time.perf_counter()
        walk(event_pages, chain_pages, start_hash=bytes(32), checkpoints=[], locator=reader,
             report=Report(from_position=1))
        walk_rate = events / (time.perf_counter() - started)
        bundle = workdir / f"bundle-{uuid.uuid4().hex[:6]}.zip"
        started = time.perf_counter()
        export_bundle(ledger, bundle)
        export_rate = events / (time.perf_counter() - started)
        started = time.perf_counter()
        result = verify_bundle(bundle)
        bundle_rate = events / (time.perf_counter() - started)
        assert result.report.ok
    finally:
        ledger.close()
    return {
        "save (chain)": f"{with_chain:,.0f}/s",
        "save (no chain)": f"{without:,.0f}/s",
        "verify": f"{verify_rate:,.0f}/s",
        "walk only": f"{walk_rate:,.0f}/s",
        "export": f"{export_rate:,.0f}/s",
        "verify-bundle": f"{bundle_rate:,.0f}/s",
        "bundle": f"{bundle.stat().st_size / 1e6:,.1f} MB",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--postgres", default=os.environ.get(
        "LEDGER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/ledger_test"))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        rows.append(("sqlite", measure(f"sqlite:///{tmp}/ledger.db", f"sqlite:///{tmp}/plain.db",
                                       args.events, args.batch, workdir)))
        if args.postgres:
            import psycopg

            schemas = [f"bench_{uuid.uuid4().hex[:8]}" for _ in range(2)]
            with psycopg.connect(args.postgres, autocommit=True) as conn:
                for schema in schemas:
                    conn.execute(f'CREATE SCHEMA "{schema}"')
            try:
                sep = "&" if "?" in args.postgres else "?"
                urls = [f"{args.postgres}{sep}schema={schema}" for schema in schemas]
                rows.append(("postgres", measure(*urls, args.events, args.batch, workdir)))
            finally:
                with psycopg.connect(args.postgres, autocommit=True) as conn:
                    for schema in schemas:
                        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    columns = list(rows[0][1])
    print(f"{args.events:,} events, {args.batch} per save, {os.cpu_count()} CPUs")
    print("| store | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for store, values in rows:
        print(f"| {store} | " + " | ".join(values[c] for c in columns) + " |")


if __name__ == "__main__":
    main()
