"""Bulk import into PostgreSQL: our write path in large batches vs the plain library.

Ours: `Ledger.save()` of whole batches (~5,000 events, hundreds of aggregates, one
transaction each), through our recorder and every in-transaction hook (hash chain...).
Baselines on the same generated events, in the same run:
  * the plain eventsourcing Application, one save per aggregate (what a naive importer does);
  * the plain Application with the same large batches (the library's own best case).
Generation of the synthetic ledger is not timed: only the save calls are, with what the
process held before each (the generator's simulation) frozen for the collector
(`Stopwatch(freeze_untimed=True)`), for ours and the baselines alike.
"""

from __future__ import annotations

from eventsourcing.application import Application

from benchmarks.common import Row, Stopwatch, fresh_schema, rate
from benchmarks.generator import SyntheticLedger
from domain.application import Ledger
from domain.persistence.transcodings import register_ledger_transcodings
from domain.persistence.url import parse_store_url


class PlainLibrary(Application):
    """The library as it comes: its own PostgreSQL recorder, no hooks."""

    def register_transcodings(self, transcoder):
        super().register_transcodings(transcoder)
        register_ledger_transcodings(transcoder)


def plain_env(url: str) -> dict[str, str]:
    env = dict(parse_store_url(url).env)
    env.pop("APPLICATION_RECORDER_TOPIC", None)
    return env


def fill(url: str, total: int, seed: int) -> tuple[int, float]:
    """Bulk-import a synthetic ledger of ``total`` events into ``url``; (events, seconds
    spent saving). The store is kept: later benchmarks read it."""
    ledger = Ledger(url)
    watch, count = Stopwatch(freeze_untimed=True), 0
    try:
        for batch in SyntheticLedger(seed).batches(total, batch_events=5000):
            with watch:
                ledger.save(*batch.aggregates, after_insert=ledger.after_insert_hooks)
            count += batch.events
    finally:
        ledger.close()
    return count, watch.seconds


def _plain(total: int, seed: int, *, per_aggregate: bool) -> tuple[int, float]:
    with fresh_schema("plain") as url:
        app = PlainLibrary(env=plain_env(url))
        watch, count = Stopwatch(freeze_untimed=True), 0
        try:
            for batch in SyntheticLedger(seed).batches(total, batch_events=5000):
                with watch:
                    if per_aggregate:
                        for aggregate in batch.aggregates:
                            app.save(aggregate)
                    else:
                        app.save(*batch.aggregates)
                count += batch.events
        finally:
            app.close()
    return count, watch.seconds


def run(url: str, total: int, baseline_total: int, seed: int = 7) -> list[Row]:
    n_ours, s_ours = fill(url, total, seed)
    n_one, s_one = _plain(baseline_total, seed, per_aggregate=True)
    n_batch, s_batch = _plain(baseline_total, seed, per_aggregate=False)
    ours, one, batched = n_ours / s_ours, n_one / s_one, n_batch / s_batch
    return [
        Row("1. bulk import into PostgreSQL", f"{rate(n_ours, s_ours)} ({n_ours:,} events)",
            f"{rate(n_one, s_one)} plain lib, one save per aggregate", ours / one,
            "≥ 20,000 events/s", ours >= 20_000),
        Row("   (same, vs plain library batched)", "", f"{rate(n_batch, s_batch)} plain lib, "
            "same batches", ours / batched, "", None),
    ]
