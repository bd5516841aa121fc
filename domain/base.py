"""Common base of the ledger's aggregates: every event carries ``meta`` (DESIGN §2)."""

from __future__ import annotations

from typing import Any

from eventsourcing.domain import Aggregate


class LedgerAggregate(Aggregate):
    class Event(Aggregate.Event):
        meta: dict[str, Any]

    class Created(Event, Aggregate.Created):
        pass
