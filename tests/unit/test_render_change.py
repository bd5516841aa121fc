"""A projection re-renders only the rows an event can change (``Projection.render_change``);
what it gives must be what rendering everything gives, after every event."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from benchmarks.generator import SyntheticLedger
from domain.task import Task
from tests.behaviour.projection_helpers import fold_checking_renders


def synthetic_events(total: int) -> Iterator[Any]:
    for batch in SyntheticLedger(11).batches(total, batch_events=500):
        for aggregate in batch.aggregates:
            yield from aggregate.collect_events()


def test_rendering_what_an_event_changes_equals_rendering_everything():
    events = list(synthetic_events(12_000))
    kinds = {type(e) for e in events}
    # The ledger carries the events rendered in part, and the ones rendered whole after them.
    assert {Task.ProgressReported, Task.ExtensionRequested, Task.ExtensionGranted,
            Task.CompletionReported, Task.CompletionConfirmed, Task.CompletionRejected,
            Task.Cancelled} <= kinds
    in_part = fold_checking_renders(events)
    assert in_part["obligations"] > 1000
    assert in_part["accountability"] > 1000
