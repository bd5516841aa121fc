"""Common base of the ledger's aggregates: every event carries ``meta`` (DESIGN §2)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from eventsourcing.domain import Aggregate

from domain.clock import plausible_day_problem
from domain.errors import DomainError, UnreadableEvent, ValidationError, unreadable_event


def require_plausible_days(fields: dict[str, Any]) -> None:
    """Every date an event states lies in the ledger's calendar (domain.clock)."""
    for name, value in fields.items():
        if isinstance(value, date) and not isinstance(value, datetime):
            problem = plausible_day_problem(value)
            if problem:
                raise ValidationError(f"{name}: {problem}", field=name)


def unfit(event: Any, why: Exception) -> UnreadableEvent:
    return unreadable_event(
        f"{type(event).__qualname__} of {event.originator_id} v{event.originator_version}",
        f"cannot be applied: {why}")


class LedgerAggregate(Aggregate):
    class Event(Aggregate.Event):
        meta: dict[str, Any]

        def mutate(self, aggregate: Any) -> Any:
            """The library's fold, saying which stored event failed when one no longer fits
            its aggregate: a row edited behind the ledger's back can still parse as JSON yet
            lack a field, or a deleted row leaves a gap in the versions."""
            try:
                return super().mutate(aggregate)
            except DomainError:
                raise
            except Exception as exc:
                raise unfit(self, exc) from exc

    class Created(Event, Aggregate.Created):
        pass

    @classmethod
    def _create(cls, event_class: Any, *, id: Any = None, **kwargs: Any):
        require_plausible_days(kwargs)
        return super()._create(event_class, id=id, **kwargs)

    def trigger_event(self, event_class: Any, **kwargs: Any) -> None:
        require_plausible_days(kwargs)
        super().trigger_event(event_class, **kwargs)
