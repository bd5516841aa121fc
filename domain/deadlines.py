"""Thời hạn: deadlines as written in directives, and their normalised form (DESIGN §3).

The phrase is always kept beside the normalised form, because the phrase is what the
document says and the normal form is our reading of it. A phrase we cannot read is refused
with an error naming it; we never guess.

Kinds:
  absolute     one calendar day ("chậm nhất ngày 30/8/2022", "hoàn thành trong tháng 5/2024")
  period_end   the last day of a quarter, year or span of years ("Quý IV năm 2021")
  recurring    one obligation per period ("Hằng năm", "Trước 25/12 năm báo cáo")
  standing     no due date, never overdue ("Thường xuyên")
  conditional  dormant until a DeadlineTriggered event sets a date ("Sau khi có hướng dẫn...")
"""

from __future__ import annotations

import calendar
import re
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, replace
from datetime import date, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Any

from domain.clock import EARLIEST_DAY, LATEST_DAY, plausible_day_problem
from domain.errors import UnparseableDeadline
from domain.rulebook import RULEBOOK, Rulebook
from domain.text import clean_text, fold

ONCE = "once"  # occurrence key of a deadline that falls due a single time


class DeadlineKind(StrEnum):
    ABSOLUTE = "absolute"
    PERIOD_END = "period_end"
    RECURRING = "recurring"
    STANDING = "standing"
    CONDITIONAL = "conditional"


class Frequency(StrEnum):
    YEARLY = "yearly"
    QUARTERLY = "quarterly"
    MONTHLY = "monthly"


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One period's obligation of a task: its key ("2022", "2022-Q1", "once") and due day."""

    key: str
    due_on: date


@dataclass(frozen=True, slots=True)
class Deadline:
    kind: DeadlineKind
    text: str
    due_on: date | None = None
    frequency: Frequency | None = None
    # Yearly recurrences: the due day within each year (month, day). None = 31/12.
    month: int | None = None
    day: int | None = None
    first_year: int | None = None
    last_year: int | None = None
    condition: str | None = None
    note: str | None = None

    def __deepcopy__(self, memo: dict[int, Any]) -> Deadline:
        """Itself: frozen, and every field immutable (a task's copy shares it)."""
        return self

    def inconsistency(self) -> str | None:
        """Why no deadline ``parse_deadline`` makes looks like this one (a stored deadline
        edited behind the ledger's back), or None. Such a deadline would fail later, in
        whatever judges it: a dated kind without its due date has no occurrence to owe."""
        if self.kind in (DeadlineKind.ABSOLUTE, DeadlineKind.PERIOD_END) and self.due_on is None:
            return f"its {self.kind.value} deadline has no due date"
        if self.kind is DeadlineKind.RECURRING and self.frequency is None:
            return "its recurring deadline has no frequency"
        if self.due_on is not None and (problem := plausible_day_problem(self.due_on)):
            return f"its deadline's due date: {problem}"
        years = (EARLIEST_DAY.year, LATEST_DAY.year)  # as parse_deadline reads years
        numbers = {"month": (1, 9999), "day": (1, 9999), "first_year": years,
                   "last_year": years}  # (a month and a day: whether a day, below)
        for name, (low, high) in numbers.items():
            value = getattr(self, name)
            if value is not None and (type(value) is not int or not low <= value <= high):
                return f"its deadline's {name} is {value!r}"
        if self.month is not None or self.day is not None:
            try:
                date(2000, self.month or 12, self.day or 31)  # 2000: 29/2 is a day
            except ValueError:
                return f"its deadline's day {self.day}/{self.month} is not a day of the year"
        if not isinstance(self.text, str):
            return "its deadline's text is not text"
        return None

    # -- queries ---------------------------------------------------------------------------

    @property
    def has_due_date(self) -> bool:
        return self.kind in (DeadlineKind.ABSOLUTE, DeadlineKind.PERIOD_END) or (
            self.kind is DeadlineKind.CONDITIONAL and self.due_on is not None
        )

    @property
    def is_dormant(self) -> bool:
        return self.kind is DeadlineKind.CONDITIONAL and self.due_on is None

    def triggered(self, due_on: date) -> Deadline:
        """The conditional deadline made concrete by a DeadlineTriggered event."""
        return replace(self, due_on=due_on)

    def occurrence_due(self, key: str) -> date:
        """Due date of the occurrence named by ``key``; ValueError if it is not one."""
        if self.kind is not DeadlineKind.RECURRING:
            if key != ONCE or self.due_on is None:
                raise ValueError(f"deadline {self.text!r} has no occurrence {key!r}")
            return self.due_on
        due = _recurring_due(self, key)
        if self.first_year is not None and due.year < self.first_year:
            raise ValueError(f"occurrence {key!r} is before the first year {self.first_year}")
        if self.last_year is not None and due.year > self.last_year:
            raise ValueError(f"occurrence {key!r} is after the last year {self.last_year}")
        return due

    def occurrences(self, assigned_on: date, until: date) -> list[Occurrence]:
        """Occurrences that fall due from ``assigned_on`` up to ``until`` (inclusive),
        plus the next one after ``until`` so an open obligation is always visible."""
        if self.kind is DeadlineKind.STANDING or self.is_dormant:
            return []
        if self.kind is not DeadlineKind.RECURRING:
            assert self.due_on is not None
            return [Occurrence(ONCE, self.due_on)]
        first = max(assigned_on.year, self.first_year or assigned_on.year)
        last = max(first, until.year, assigned_on.year) + 1  # the next one is due by then
        schedule, dues = _schedule(self, first, last)
        # Periods follow each other, so their due dates never go down: the occurrences due
        # from ``assigned_on`` on, up to and including the first one due after ``until``.
        start = bisect_left(dues, assigned_on)
        return list(schedule[start:max(start, bisect_right(dues, until)) + 1])

    def describe(self) -> str:
        from domain.clock import format_date_vn

        if self.kind is DeadlineKind.RECURRING:
            return f"{self.text} (định kỳ {self.frequency})"
        if self.due_on is not None:
            return f"{format_date_vn(self.due_on)} ({self.text})"
        return self.text


# -- recurrence arithmetic -----------------------------------------------------------------


def _quarter_end(year: int, quarter: int) -> date:
    month = quarter * 3
    return date(year, month, calendar.monthrange(year, month)[1])


def _month_end(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


def _recurring_due(deadline: Deadline, key: str) -> date:
    try:
        if deadline.frequency is Frequency.YEARLY:
            year = int(key)
            month = deadline.month or 12
            day = deadline.day or calendar.monthrange(year, month)[1]
            return date(year, month, day)
        if deadline.frequency is Frequency.QUARTERLY:
            year_text, quarter_text = key.split("-Q")
            quarter = int(quarter_text)
            if not 1 <= quarter <= 4:
                raise ValueError
            return _quarter_end(int(year_text), quarter)
        if deadline.frequency is Frequency.MONTHLY:
            year_text, month_text = key.split("-")
            return _month_end(int(year_text), int(month_text))
    except ValueError:
        pass
    raise ValueError(f"{key!r} is not an occurrence of a {deadline.frequency} deadline")


@lru_cache(maxsize=512)
def _schedule(deadline: Deadline, first: int, last: int
              ) -> tuple[tuple[Occurrence, ...], tuple[date, ...]]:
    """A recurring deadline's occurrences in the years ``first`` to ``last``, and their due
    dates, worked out once per deadline and years: a read model lists them for a thousand
    recurring tasks per query, and most share a few deadlines and years."""
    schedule = tuple(Occurrence(key, due)
                     for key, due in _recurring_schedule(deadline, first, last))
    return schedule, tuple(o.due_on for o in schedule)


def _recurring_schedule(deadline: Deadline, year: int, until_year: int = 2100):
    last = min(until_year, deadline.last_year or until_year)
    while year <= last:
        if deadline.frequency is Frequency.YEARLY:
            keys = [str(year)]
        elif deadline.frequency is Frequency.QUARTERLY:
            keys = [f"{year}-Q{q}" for q in range(1, 5)]
        else:
            keys = [f"{year}-{m:02d}" for m in range(1, 13)]
        for key in keys:
            yield key, _recurring_due(deadline, key)
        year += 1


# -- parsing -------------------------------------------------------------------------------

_ROMAN = {"i": 1, "ii": 2, "iii": 3, "iv": 4, "1": 1, "2": 2, "3": 3, "4": 4}
_DATE = r"(\d{1,2})/(\d{1,2})/(\d{4})"
_CONDITIONAL = re.compile(
    r"(sau khi|khi có|theo quy định của|theo hướng dẫn của|theo chỉ đạo của|theo yêu cầu của)\b"
)
_YEAR = r"(\d{4})"


@dataclass(frozen=True, slots=True)
class DeadlineContext:
    """What a phrase needs from its document: when the task was assigned and, for plans
    with a stated period ("giai đoạn 2021 - 2025"), the last year recurring tasks run."""

    assigned_on: date
    last_year: int | None = None
    rulebook: Rulebook = RULEBOOK


def _error(text: str, why: str) -> UnparseableDeadline:
    return UnparseableDeadline(f"cannot read the deadline {text!r}: {why}", field="deadline")


def _make_date(text: str, day: str, month: str, year: str) -> date:
    y, m, d = int(year), int(month), int(day)
    if not 1945 <= y <= 2100:
        raise _error(text, f"year {y} is out of range 1945-2100")
    try:
        return date(y, m, d)
    except ValueError:
        raise _error(text, f"{d}/{m}/{y} is not a calendar date") from None


def _year(text: str, year: str) -> int:
    y = int(year)
    if not 1945 <= y <= 2100:
        raise _error(text, f"year {y} is out of range 1945-2100")
    return y


def _before(day: date, rulebook: Rulebook) -> tuple[date, str]:
    if rulebook.before_date_is_due_on_date:
        return day, f"'trước ngày D' đọc là hạn D ({rulebook.describe()})"
    return day - timedelta(days=1), f"'trước ngày D' đọc là hạn D-1 ({rulebook.describe()})"


def parse_deadline(text: str, context: DeadlineContext) -> Deadline:
    """Read a deadline phrase. Raises UnparseableDeadline with the phrase in the message."""
    raw = clean_text(text, "deadline", max_length=500)
    s = fold(raw)
    s = s.replace("hàng năm", "hằng năm").replace("hàng quý", "hằng quý")
    s = s.replace("hàng tháng", "hằng tháng")
    s = re.sub(r"\s*-\s*", " - ", s)
    s = re.sub(r"\s*/\s*", "/", s)
    rb = context.rulebook
    ABS, END = DeadlineKind.ABSOLUTE, DeadlineKind.PERIOD_END

    # Standing obligations ("Thường xuyên"; "Năm 2022 và những năm tiếp theo").
    if re.fullmatch(r"(thường xuyên|liên tục)( hằng năm)?", s):
        return Deadline(DeadlineKind.STANDING, raw)
    m = re.fullmatch(rf"(?:từ )?năm {_YEAR} và (?:những|các) năm tiếp theo", s) or re.fullmatch(
        rf"từ năm {_YEAR} trở đi", s
    )
    if m:
        start = _year(raw, m.group(1))
        return Deadline(DeadlineKind.STANDING, raw, first_year=start, note=f"từ năm {start}")

    # Recurring obligations.
    if s.startswith("hằng năm"):
        rest = s[len("hằng năm") :].strip(" ,")
        note = rest or None
        return Deadline(
            DeadlineKind.RECURRING, raw, frequency=Frequency.YEARLY,
            first_year=context.assigned_on.year, last_year=context.last_year, note=note,
        )
    m = re.fullmatch(
        r"(?:hoàn thành )?trước (?:ngày )?(\d{1,2})/(\d{1,2}) (?:của )?năm (?:báo cáo|kế hoạch)", s
    )
    if m:
        day_, month_ = int(m.group(1)), int(m.group(2))
        probe = _make_date(raw, str(day_), str(month_), "2024")  # validates day/month (leap)
        due, note = _before(probe, rb)
        return Deadline(
            DeadlineKind.RECURRING, raw, frequency=Frequency.YEARLY, month=due.month,
            day=due.day, first_year=context.assigned_on.year, last_year=context.last_year,
            note=note,
        )
    m = re.fullmatch(r"quý (i{1,3}|iv|[1-4]) (?:của )?năm (?:kế hoạch|báo cáo)", s)
    if m:
        quarter = _ROMAN[m.group(1)]
        end = _quarter_end(2023, quarter)
        return Deadline(
            DeadlineKind.RECURRING, raw, frequency=Frequency.YEARLY, month=end.month,
            day=end.day, first_year=context.assigned_on.year, last_year=context.last_year,
        )
    if re.fullmatch(r"(?:định kỳ )?hằng quý(?:, 6 tháng)?(?:, hằng năm)?(?: hoặc đột xuất)?", s):
        return Deadline(
            DeadlineKind.RECURRING, raw, frequency=Frequency.QUARTERLY,
            first_year=context.assigned_on.year, last_year=context.last_year,
            note="báo cáo 6 tháng và năm trùng kỳ quý II và quý IV" if "6 tháng" in s else None,
        )
    if re.fullmatch(r"(?:định kỳ )?hằng tháng", s):
        return Deadline(
            DeadlineKind.RECURRING, raw, frequency=Frequency.MONTHLY,
            first_year=context.assigned_on.year, last_year=context.last_year,
        )

    # Conditional obligations: wait for something outside the ledger.
    if _CONDITIONAL.match(s):
        return Deadline(DeadlineKind.CONDITIONAL, raw, condition=raw)

    # A hard date after a softer target: "trước ngày 25/3/2024, chậm nhất là ngày 30/3/2024".
    m = re.search(rf"chậm nhất (?:là )?(?:vào )?(?:ngày )?{_DATE}", s)
    if m:
        due = _make_date(raw, *m.groups())
        note = "hạn chót theo 'chậm nhất'" if m.start() > 0 else None
        return Deadline(ABS, raw, due_on=due, note=note)

    # Absolute days.
    m = re.fullmatch(rf"(?:hoàn thành |xong |báo cáo )?trước (?:ngày )?{_DATE}", s)
    if m:
        due, note = _before(_make_date(raw, *m.groups()), rb)
        return Deadline(ABS, raw, due_on=due, note=note)
    m = re.fullmatch(rf"(?:hoàn thành )?(?:trong |vào |đến )?(?:ngày )?{_DATE}", s)
    if m:
        return Deadline(ABS, raw, due_on=_make_date(raw, *m.groups()))
    m = re.fullmatch(r"(?:chậm nhất )?(?:hoàn thành )?(?:trong )?tháng (\d{1,2})/(\d{4})", s)
    if m:
        month_, year_ = int(m.group(1)), _year(raw, m.group(2))
        if not 1 <= month_ <= 12:
            raise _error(raw, f"month {month_} does not exist")
        return Deadline(ABS, raw, due_on=_month_end(year_, month_))

    # Ends of periods.
    m = re.fullmatch(r"(?:trong )?quý (i{1,3}|iv|[1-4])(?: năm |/)(\d{4})", s)
    if m:
        return Deadline(END, raw, due_on=_quarter_end(_year(raw, m.group(2)), _ROMAN[m.group(1)]))
    m = re.fullmatch(r"6 tháng (đầu|cuối) năm (\d{4})", s)
    if m:
        year_ = _year(raw, m.group(2))
        half_end = date(year_, 6, 30) if m.group(1) == "đầu" else date(year_, 12, 31)
        return Deadline(END, raw, due_on=half_end)
    m = re.fullmatch(
        rf"(?:chậm nhất )?(?:hoàn thành )?(?:trong )?(?:năm|giai đoạn) {_YEAR}(?: - {_YEAR})?", s
    )
    if m:
        first = _year(raw, m.group(1))
        last = _year(raw, m.group(2)) if m.group(2) else first
        if last < first:
            raise _error(raw, f"the period ends ({last}) before it starts ({first})")
        return Deadline(END, raw, due_on=date(last, 12, 31))

    raise _error(raw, "not a known form of deadline (see DESIGN §3 for the accepted phrases)")
