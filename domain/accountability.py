"""Accountability of heads of agencies (DESIGN §5.2; Quyết định 01/2024/QĐ-UBND, Quảng Ngãi).

Pure functions: given the facts the ledger holds (as known at some moment) and the day they are
judged on, decide which obligations fell due in a period, how each ended, and which person
answers for it. No I/O and no clock; the read model gathers the facts and calls ``assess``.

Our reading (rulebook 2024.1, provisional until the regulation's articles are transcribed):

* An obligation is one occurrence of a task. It falls due on its *accountable due date*: the
  due date in force when it expired — the original one, or one moved by an extension that was
  requested in time (``OccurrenceState.lateness_due``). On a day D it has fallen due when that
  date is before D.
* Its outcome on D: done on time (a confirmed completion dated on or before the due date),
  done late (dated after it, and known by D), or overdue (no confirmed completion dated by D).
  An obligation cancelled on or before its due date never fell due; one cancelled later while
  still open stays overdue — cancelling does not erase a shortfall.
* Who answers: the head of the agency leading the task on the *attribution day* — the due
  date, or for a late completion the completion date. The lead on a day follows
  reassignments by their effective date and mergers that had taken effect by that day (the
  successor answers), never later ones: a reorganisation never moves past blame. A lead that
  is a group of agencies ("Các sở, ban, ngành") has no single head; such obligations are
  reported per group, and an agency without a recorded head is reported as such. Nobody is
  invented.
* Each outcome counts in the period containing its attribution day. For periods that ended
  before D, "overdue at period end" lists the obligations that fell due in the period and were
  not done by its last day (whatever happened later), attributed to the head on the due date.
* Extension requests and rejected completions count in the period of the (Vietnam) day they
  were recorded, for the head of the leading agency on that day.
* On-time ratio = done on time / fallen due, shown beside the rulebook's threshold (in the
  spirit of NĐ 90/2020) as advice only, never as a legal rating.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

from domain.errors import ValidationError
from domain.rulebook import RULEBOOK, Rulebook

# -- periods ---------------------------------------------------------------------------------

_ROMAN = {1: "I", 2: "II", 3: "III", 4: "IV"}


@dataclass(frozen=True, slots=True)
class Period:
    """A reporting period: a year ("2024"), a quarter ("2024-Q2") or a half year ("2024-H1")."""

    key: str
    start: date
    end: date

    @classmethod
    def parse(cls, text: str) -> Period:
        raw = text.strip().upper()
        m = re.fullmatch(r"(\d{4})(?:-(Q[1-4]|H[12]))?", raw) or re.fullmatch(
            r"(Q[1-4]|H[12])[/-](\d{4})", raw
        )
        if not m:
            raise ValidationError(
                f"not a period: {text!r} (expected a year such as 2024, a quarter such as "
                "2024-Q2, or a half year such as 2024-H1)",
                field="period",
            )
        year_text, part = (m.group(1), m.group(2)) if m.group(1).isdigit() else (
            m.group(2), m.group(1))
        year = int(year_text)
        if not 1945 <= year <= 2100:
            raise ValidationError(f"year {year} is out of range 1945-2100", field="period")
        if part is None:
            return cls(str(year), date(year, 1, 1), date(year, 12, 31))
        number = int(part[1])
        months = 3 if part[0] == "Q" else 6
        first = (number - 1) * months + 1
        last = first + months - 1
        return cls(f"{year}-{part}", date(year, first, 1),
                   date(year, last, calendar.monthrange(year, last)[1]))

    def contains(self, day: date) -> bool:
        return self.start <= day <= self.end

    @property
    def label_vi(self) -> str:
        year, _, part = self.key.partition("-")
        if not part:
            return f"Năm {year}"
        if part[0] == "Q":
            return f"Quý {_ROMAN[int(part[1])]} năm {year}"
        return f"6 tháng {'đầu' if part == 'H1' else 'cuối'} năm {year}"


# -- facts -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tenure:
    """A head's (or acting head's) time in office, with the positions of the events that
    record it."""

    person: str
    position: str
    from_on: date
    to_on: date | None
    acting: bool
    appointed_at: int | None = None
    left_at: int | None = None

    def covers(self, day: date) -> bool:
        return self.from_on <= day and (self.to_on is None or day <= self.to_on)


@dataclass(frozen=True, slots=True)
class AgencyFacts:
    code: str
    name: str
    is_group: bool = False
    successor: str | None = None
    merged_on: date | None = None
    merged_at: int | None = None
    tenures: tuple[Tenure, ...] = ()


@dataclass(frozen=True, slots=True)
class LeadSpell:
    """The lead agency of a task from a day on (assignment, then each reassignment)."""

    agency: str
    from_on: date
    recorded_at: int | None = None


@dataclass(frozen=True, slots=True)
class TaskRef:
    task_id: str
    directive_number: str
    ordinal: str
    content: str = ""


@dataclass(frozen=True, slots=True)
class ObligationFacts:
    task: TaskRef
    occurrence: str
    original_due: date
    due: date  # the accountable due date (lateness_due)
    completed_on: date | None
    cancelled_on: date | None
    leads: tuple[LeadSpell, ...]
    due_evidence: tuple[int, ...] = ()  # assignment, trigger, extensions that moved ``due``
    completion_evidence: tuple[int, ...] = ()  # completion reported + confirmed
    cancel_evidence: tuple[int, ...] = ()


class ActKind(StrEnum):
    EXTENSION_REQUESTED = "extension_requested"
    COMPLETION_REJECTED = "completion_rejected"


@dataclass(frozen=True, slots=True)
class ActFacts:
    """Something the leading agency did (or had done to its report) on a day."""

    task: TaskRef
    occurrence: str
    kind: ActKind
    day: date
    leads: tuple[LeadSpell, ...]
    evidence: tuple[int, ...]
    timely: bool | None = None  # extension requests: recorded before the due date expired
    outcome: str | None = None  # extension requests: "granted" | "rejected" | "pending"


# -- who answers -----------------------------------------------------------------------------


def head_on(tenures: Iterable[Tenure], day: date) -> Tenure | None:
    """The head on a day; an acting head (cấp phó phụ trách) only when there is no head.
    Same rule as ``Agency.head_on``."""
    serving = [t for t in tenures if t.covers(day)]
    for tenure in serving:
        if not tenure.acting:
            return tenure
    return serving[0] if serving else None


def lead_on(leads: Sequence[LeadSpell], day: date) -> LeadSpell:
    """The lead agency on a day: the last assignment or reassignment effective by then."""
    if not leads:
        raise ValueError("a task always has a lead")
    ordered = sorted(leads, key=lambda s: (s.from_on, s.recorded_at or 0))
    current = ordered[0]
    for spell in ordered:
        if spell.from_on <= day:
            current = spell
    return current


def responsible_agency(code: str, day: date,
                       agencies: Mapping[str, AgencyFacts]) -> tuple[str, tuple[int, ...]]:
    """The agency answering for ``code`` on a day: after a merger that had taken effect by
    then, its successor (transitively). Returns the code and the merger events' positions.
    Same rule as ``Ledger.responsible_agency``."""
    seen: set[str] = set()
    evidence: list[int] = []
    while code not in seen:
        seen.add(code)
        facts = agencies.get(code)
        if (facts is not None and facts.successor and facts.merged_on is not None
                and facts.merged_on <= day):
            if facts.merged_at is not None:
                evidence.append(facts.merged_at)
            code = facts.successor
            continue
        break
    return code, tuple(evidence)


def may_answer_for(agency: str, agencies: Mapping[str, AgencyFacts]) -> frozenset[str]:
    """The lead agencies whose tasks ``agency`` can answer for on some day: itself and those
    merged into it, directly or through others (``responsible_agency`` on any day). An
    obligation or act none of whose lead spells names one of them never reaches ``agency``'s
    records, so a read model asked for one agency need not gather it."""
    out = {agency}
    for code in agencies:
        seen: set[str] = set()
        step = code
        while step not in seen:
            seen.add(step)
            if step == agency:
                out.add(code)
                break
            facts = agencies.get(step)
            if facts is None or not facts.successor:
                break
            step = facts.successor
    return frozenset(out)


@dataclass(frozen=True, slots=True)
class Answerable:
    """Who answers for something: a head's tenure at an agency, a group, or an agency whose
    head the ledger does not know."""

    agency: str
    tenure: Tenure | None
    is_group: bool

    @property
    def kind(self) -> str:
        if self.is_group:
            return "group"
        return "head" if self.tenure is not None else "no_head"


def who_answers(leads: Sequence[LeadSpell], day: date,
                agencies: Mapping[str, AgencyFacts]) -> tuple[Answerable, tuple[int, ...]]:
    spell = lead_on(leads, day)
    code, merger_evidence = responsible_agency(spell.agency, day, agencies)
    facts = agencies.get(code)
    evidence = [*merger_evidence]
    if spell.recorded_at is not None:
        evidence.append(spell.recorded_at)
    if facts is not None and facts.is_group:
        return Answerable(code, None, True), tuple(evidence)
    tenure = head_on(facts.tenures, day) if facts is not None else None
    if tenure is not None:
        evidence += [p for p in (tenure.appointed_at, tenure.left_at) if p is not None]
    return Answerable(code, tenure, False), tuple(evidence)


# -- outcomes --------------------------------------------------------------------------------


class Outcome(StrEnum):
    DONE_ON_TIME = "done_on_time"
    DONE_LATE = "done_late"
    OVERDUE = "overdue"


def judge(ob: ObligationFacts, on: date) -> Outcome | None:
    """The outcome of an obligation on a day, or None if it has not fallen due (or was
    cancelled before it did)."""
    if ob.cancelled_on is not None and ob.cancelled_on <= ob.due:
        return None
    if ob.completed_on is not None and ob.completed_on <= on:
        return Outcome.DONE_ON_TIME if ob.completed_on <= ob.due else Outcome.DONE_LATE
    if ob.due < on:
        return Outcome.OVERDUE
    return None


def attribution_day(ob: ObligationFacts, outcome: Outcome) -> date:
    if outcome is Outcome.DONE_LATE:
        assert ob.completed_on is not None
        return ob.completed_on
    return ob.due


def overdue_at_period_end(ob: ObligationFacts, period: Period) -> bool:
    """Fell due in the period and was not done by its last day (a due date on the last day
    expires at 24:00, i.e. at the period's end)."""
    if not period.contains(ob.due):
        return False
    if ob.cancelled_on is not None and ob.cancelled_on <= ob.due:
        return False
    return ob.completed_on is None or ob.completed_on > period.end


# -- records ---------------------------------------------------------------------------------


class ShortfallKind(StrEnum):
    DONE_LATE = "done_late"
    OVERDUE = "overdue"
    OVERDUE_AT_PERIOD_END = "overdue_at_period_end"
    COMPLETION_REJECTED = "completion_rejected"


@dataclass(frozen=True, slots=True)
class Shortfall:
    kind: ShortfallKind
    task: TaskRef
    occurrence: str
    due: date
    original_due: date | None
    completed_on: date | None
    day: date  # the attribution day
    evidence: tuple[int, ...]  # positions of the events that prove it


@dataclass(slots=True)
class HeadRecord:
    """One answerable (person × agency × tenure, or a group, or an agency without a known
    head) in one period."""

    answerable: Answerable
    period: Period
    done_on_time: int = 0
    done_late: int = 0
    overdue: int = 0
    overdue_at_period_end: int = 0
    extensions_requested: int = 0
    extensions_requested_late: int = 0
    extensions_granted: int = 0
    extensions_rejected: int = 0
    completions_rejected: int = 0
    on_time: list[tuple[TaskRef, str]] = field(default_factory=list)
    shortfalls: list[Shortfall] = field(default_factory=list)

    @property
    def fallen_due(self) -> int:
        return self.done_on_time + self.done_late + self.overdue

    @property
    def on_time_ratio(self) -> float | None:
        return self.done_on_time / self.fallen_due if self.fallen_due else None

    def meets_threshold(self, rulebook: Rulebook = RULEBOOK) -> bool | None:
        ratio = self.on_time_ratio
        return None if ratio is None else ratio >= rulebook.on_time_threshold


def _key(answerable: Answerable) -> tuple:
    tenure = answerable.tenure
    return (answerable.agency, tenure.person if tenure else "", tenure.from_on if tenure else
            date.min, tenure.acting if tenure else False, answerable.kind)


def _merge(*groups: Iterable[int]) -> tuple[int, ...]:
    return tuple(sorted({p for group in groups for p in group}))


def assess(
    period: Period,
    on: date,
    obligations: Iterable[ObligationFacts],
    acts: Iterable[ActFacts],
    agencies: Mapping[str, AgencyFacts],
) -> list[HeadRecord]:
    """Records for every answerable with something in the period, judged on day ``on``."""
    records: dict[tuple, HeadRecord] = {}

    def record(answerable: Answerable) -> HeadRecord:
        key = _key(answerable)
        if key not in records:
            records[key] = HeadRecord(answerable, period)
        return records[key]

    period_closed = period.end < on
    for ob in obligations:
        outcome = judge(ob, on)
        if outcome is not None:
            day = attribution_day(ob, outcome)
            if period.contains(day):
                who, who_evidence = who_answers(ob.leads, day, agencies)
                rec = record(who)
                if outcome is Outcome.DONE_ON_TIME:
                    rec.done_on_time += 1
                    rec.on_time.append((ob.task, ob.occurrence))
                elif outcome is Outcome.DONE_LATE:
                    rec.done_late += 1
                    rec.shortfalls.append(Shortfall(
                        ShortfallKind.DONE_LATE, ob.task, ob.occurrence, ob.due, ob.original_due,
                        ob.completed_on, day,
                        _merge(ob.due_evidence, ob.completion_evidence, who_evidence)))
                else:
                    rec.overdue += 1
                    rec.shortfalls.append(Shortfall(
                        ShortfallKind.OVERDUE, ob.task, ob.occurrence, ob.due, ob.original_due,
                        None, day, _merge(ob.due_evidence, ob.cancel_evidence, who_evidence)))
        if period_closed and overdue_at_period_end(ob, period):
            who, who_evidence = who_answers(ob.leads, ob.due, agencies)
            rec = record(who)
            rec.overdue_at_period_end += 1
            completion = ob.completion_evidence if ob.completed_on is not None else ()
            rec.shortfalls.append(Shortfall(
                ShortfallKind.OVERDUE_AT_PERIOD_END, ob.task, ob.occurrence, ob.due,
                ob.original_due, ob.completed_on, ob.due,
                _merge(ob.due_evidence, completion, who_evidence)))
    for act in acts:
        if not period.contains(act.day):
            continue
        who, who_evidence = who_answers(act.leads, act.day, agencies)
        rec = record(who)
        if act.kind is ActKind.EXTENSION_REQUESTED:
            rec.extensions_requested += 1
            rec.extensions_requested_late += 0 if act.timely else 1
            rec.extensions_granted += act.outcome == "granted"
            rec.extensions_rejected += act.outcome == "rejected"
        else:
            rec.completions_rejected += 1
            rec.shortfalls.append(Shortfall(
                ShortfallKind.COMPLETION_REJECTED, act.task, act.occurrence, act.day, None,
                None, act.day, _merge(act.evidence, who_evidence)))
    for rec in records.values():
        rec.shortfalls.sort(key=lambda s: (s.day, s.task.directive_number, s.task.ordinal,
                                           s.occurrence, s.kind.value))
        rec.on_time.sort(key=lambda item: (item[0].directive_number, item[0].ordinal, item[1]))
    return sorted(records.values(), key=lambda r: _key(r.answerable))


def threshold_advice(ratio: float | None, rulebook: Rulebook = RULEBOOK) -> str:
    """A sentence of advice beside the threshold; never a legal rating."""
    threshold = f"{rulebook.on_time_threshold:.0%}"
    if ratio is None:
        return f"chưa có nhiệm vụ đến hạn (ngưỡng tham khảo {threshold})"
    verdict = "đạt" if ratio >= rulebook.on_time_threshold else "chưa đạt"
    return f"{ratio:.0%} đúng hạn — {verdict} ngưỡng tham khảo {threshold} (NĐ 90/2020, tham khảo)"
