"""Agency (cơ quan, đơn vị): a sở/ban/ngành, an UBND cấp huyện/xã, or a named group.

Agencies are reorganised in real life: renamed, merged into a successor, dissolved. A
reorganisation never rewrites who was accountable before it: heads' tenures are kept with
their dates, and the successor chain is followed only from the effective date on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any
from uuid import UUID

from domain.base import LedgerAggregate
from domain.errors import InvalidTransition, ValidationError
from domain.ids import agency_id


class AgencyLevel(StrEnum):
    PROVINCE = "province"  # UBND tỉnh (the issuing People's Committee)
    PROVINCIAL = "provincial"  # sở, ban, ngành cấp tỉnh; Văn phòng UBND tỉnh
    CENTRAL_BRANCH = "central_branch"  # cơ quan ngành dọc đặt tại địa phương
    DISTRICT = "district"  # UBND cấp huyện
    COMMUNE = "commune"  # UBND cấp xã
    PARTY = "party"  # cơ quan của Đảng (Ban Tổ chức Tỉnh ủy...)
    OTHER = "other"  # enterprises, associations
    GROUP = "group"  # a named group ("Các Sở, ban, ngành"), not a single body


class AgencyStatus(StrEnum):
    ACTIVE = "active"
    MERGED = "merged"
    DISSOLVED = "dissolved"


@dataclass(frozen=True, slots=True)
class HeadTenure:
    """Người đứng đầu: who headed the agency, from when to when (both days inclusive)."""

    person: str
    position: str
    from_on: date
    to_on: date | None
    acting: bool  # cấp phó phụ trách / quyền: heads the agency without being its head

    def covers(self, day: date) -> bool:
        return self.from_on <= day and (self.to_on is None or day <= self.to_on)


class Agency(LedgerAggregate):
    @staticmethod
    def create_id(code: str) -> UUID:
        return agency_id(code)

    class Registered(LedgerAggregate.Created):
        code: str
        name: str
        level: str
        parent: str | None
        aliases: list[str]
        established_on: date | None
        member_levels: list[str]

    class Renamed(LedgerAggregate.Event):
        name: str
        effective_on: date

        def apply(self, agency: Agency) -> None:
            agency.former_names.append((agency.name, self.effective_on))
            agency.name = self.name

    class Merged(LedgerAggregate.Event):
        successor: str
        effective_on: date

        def apply(self, agency: Agency) -> None:
            agency.status = AgencyStatus.MERGED
            agency.successor = self.successor
            agency.ended_on = self.effective_on

    class Dissolved(LedgerAggregate.Event):
        effective_on: date

        def apply(self, agency: Agency) -> None:
            agency.status = AgencyStatus.DISSOLVED
            agency.ended_on = self.effective_on

    class HeadAppointed(LedgerAggregate.Event):
        person: str
        position: str
        from_on: date
        acting: bool

        def apply(self, agency: Agency) -> None:
            agency.heads.append(
                HeadTenure(self.person, self.position, self.from_on, None, self.acting)
            )

    class HeadLeft(LedgerAggregate.Event):
        person: str
        to_on: date

        def apply(self, agency: Agency) -> None:
            for i, tenure in enumerate(agency.heads):
                if tenure.person == self.person and tenure.to_on is None:
                    agency.heads[i] = HeadTenure(
                        tenure.person, tenure.position, tenure.from_on, self.to_on, tenure.acting
                    )
                    return

    def __init__(
        self, code: str, name: str, level: str, parent: str | None, aliases: list[str],
        established_on: date | None, member_levels: list[str], meta: dict[str, Any],
    ) -> None:
        self.code = code
        self.name = name
        self.level = AgencyLevel(level)
        self.parent = parent
        self.aliases = list(aliases)
        self.established_on = established_on
        # A group ("Các sở, ban, ngành tỉnh") stands for every agency of these levels.
        self.member_levels = [AgencyLevel(level) for level in member_levels]
        self.status = AgencyStatus.ACTIVE
        self.successor: str | None = None
        self.ended_on: date | None = None
        self.former_names: list[tuple[str, date]] = []
        self.heads: list[HeadTenure] = []

    # -- commands (validated by the application; these enforce the aggregate's invariants) --

    @classmethod
    def register(cls, *, code: str, name: str, level: AgencyLevel, parent: str | None,
                 aliases: list[str], established_on: date | None,
                 member_levels: list[AgencyLevel], meta: dict[str, Any],
                 timestamp) -> Agency:
        return cls._create(
            cls.Registered, code=code, name=name, level=level.value, parent=parent,
            aliases=aliases, established_on=established_on,
            member_levels=[m.value for m in member_levels], meta=meta, timestamp=timestamp,
        )

    def _require_active(self, on: date) -> None:
        if self.status is not AgencyStatus.ACTIVE:
            raise InvalidTransition(
                f"agency {self.code} is {self.status.value} since {self.ended_on:%d/%m/%Y}",
                field="agency",
            )

    def rename(self, *, name: str, effective_on: date, meta, timestamp) -> None:
        self._require_active(effective_on)
        if name == self.name:
            raise ValidationError(f"agency {self.code} is already named {name!r}", field="name")
        self.trigger_event(self.Renamed, name=name, effective_on=effective_on, meta=meta,
                           timestamp=timestamp)

    def merge_into(self, *, successor: str, effective_on: date, meta, timestamp) -> None:
        self._require_active(effective_on)
        if successor == self.code:
            raise ValidationError("an agency cannot merge into itself", field="successor")
        self.trigger_event(self.Merged, successor=successor, effective_on=effective_on,
                           meta=meta, timestamp=timestamp)

    def dissolve(self, *, effective_on: date, meta, timestamp) -> None:
        self._require_active(effective_on)
        self.trigger_event(self.Dissolved, effective_on=effective_on, meta=meta,
                           timestamp=timestamp)

    def appoint_head(self, *, person: str, position: str, from_on: date, acting: bool,
                     meta, timestamp) -> None:
        self._require_active(from_on)
        if self.level is AgencyLevel.GROUP:
            raise InvalidTransition(f"{self.code} is a group of agencies and has no head",
                                    field="agency")
        for tenure in self.heads:
            if tenure.acting == acting and tenure.to_on is None:
                kind = "acting head" if acting else "head"
                raise InvalidTransition(
                    f"{tenure.person} is still the {kind} of {self.code} (since "
                    f"{tenure.from_on:%d/%m/%Y}); record their departure first",
                    field="person",
                )
            if tenure.acting == acting and tenure.to_on is not None and from_on <= tenure.to_on:
                raise ValidationError(
                    f"new tenure from {from_on:%d/%m/%Y} overlaps {tenure.person}'s, which "
                    f"ended {tenure.to_on:%d/%m/%Y}",
                    field="from_on",
                )
        self.trigger_event(self.HeadAppointed, person=person, position=position,
                           from_on=from_on, acting=acting, meta=meta, timestamp=timestamp)

    def record_head_left(self, *, person: str, to_on: date, meta, timestamp) -> None:
        for tenure in self.heads:
            if tenure.person == person and tenure.to_on is None:
                if to_on < tenure.from_on:
                    raise ValidationError(
                        f"{person} cannot leave ({to_on:%d/%m/%Y}) before starting "
                        f"({tenure.from_on:%d/%m/%Y})",
                        field="to_on",
                    )
                self.trigger_event(self.HeadLeft, person=person, to_on=to_on, meta=meta,
                                   timestamp=timestamp)
                return
        raise InvalidTransition(f"{person} is not a serving head of {self.code}", field="person")

    # -- queries ----------------------------------------------------------------------------

    def head_on(self, day: date) -> HeadTenure | None:
        """The head on a day; an acting head (cấp phó phụ trách) only if there is no head."""
        serving = [t for t in self.heads if t.covers(day)]
        for tenure in serving:
            if not tenure.acting:
                return tenure
        return serving[0] if serving else None

    @property
    def is_group(self) -> bool:
        return self.level is AgencyLevel.GROUP

    def includes(self, other: Agency) -> bool:
        """Whether ``other`` is a member of this group (by level)."""
        return self.is_group and other.level in self.member_levels

    def active_on(self, day: date) -> bool:
        started = self.established_on is None or self.established_on <= day
        return started and (self.ended_on is None or day < self.ended_on)
