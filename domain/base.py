"""Common base of the ledger's aggregates: every event carries ``meta`` (DESIGN §2)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from eventsourcing.domain import Aggregate

from domain.clock import plausible_day_problem
from domain.errors import ValidationError


def require_plausible_days(fields: dict[str, Any]) -> None:
    """Every date an event states lies in the ledger's calendar (domain.clock)."""
    for name, value in fields.items():
        if isinstance(value, date) and not isinstance(value, datetime):
            problem = plausible_day_problem(value)
            if problem:
                raise ValidationError(f"{name}: {problem}", field=name)


class LedgerAggregate(Aggregate):
    class Event(Aggregate.Event):
        meta: dict[str, Any]

    class Created(Event, Aggregate.Created):
        pass

    @classmethod
    def _create(cls, event_class: Any, *, id: Any = None, **kwargs: Any):
        require_plausible_days(kwargs)
        return super()._create(event_class, id=id, **kwargs)

    def trigger_event(self, event_class: Any, **kwargs: Any) -> None:
        require_plausible_days(kwargs)
        super().trigger_event(event_class, **kwargs)
