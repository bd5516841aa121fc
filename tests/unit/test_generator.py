"""The benchmark generator (no store): deterministic by seed, and the shape its docstring
claims, since every benchmark figure describes the ledger it produces."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from benchmarks.generator import SyntheticLedger
from domain.directive import Directive
from domain.task import Task


def events(seed: int, total: int) -> Iterator[Any]:
    for batch in SyntheticLedger(seed).batches(total, batch_events=500):
        for aggregate in batch.aggregates:
            yield from aggregate.collect_events()


def fingerprint(seed: int, total: int) -> list[tuple[str, str, int, str]]:
    return [(type(e).__qualname__, str(e.originator_id), e.originator_version,
             e.timestamp.isoformat()) for e in events(seed, total)]


def test_the_same_seed_gives_the_same_ledger_and_another_seed_another():
    first = fingerprint(7, 3000)
    assert len(first) >= 3000
    assert fingerprint(7, 3000) == first
    assert fingerprint(8, 3000) != first


def test_directives_carry_1_to_50_tasks_and_recurring_tasks_are_done_period_after_period():
    tasks_per_directive: dict[Any, int] = {}
    done: dict[Any, set[str]] = defaultdict(set)
    for event in events(7, 40_000):
        if isinstance(event, Directive.Issued):
            tasks_per_directive[event.originator_id] = len(event.task_ordinals)
        if isinstance(event, Task.CompletionConfirmed) and event.occurrence is not None:
            done[event.originator_id].add(event.occurrence)
    counts = tasks_per_directive.values()
    assert min(counts) == 1 and max(counts) <= 50 and max(counts) >= 30
    # Yearly, quarterly and monthly tasks: later periods are reported on too, not only the
    # first two (which left every later period overdue for ever).
    assert sum(len(keys) >= 3 for keys in done.values()) >= 20
